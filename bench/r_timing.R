# Live R timings for the interlace benchmark (called by `python -m bench`).
#
# Usage: Rscript bench/r_timing.R MANIFEST.json OUT.json
#
# MANIFEST is a JSON list of {case, json, data, reps, warmup, variants}. For each case the
# script reads the same CSV interlace reads, restores the factor columns in R's level order
# (the case JSON's factor_levels), binds it to the data name the reference r_call uses, and
# times the call with system.time() (elapsed), `reps` times after `warmup` untimed fits.
# Variants: "lme4" / "glmmTMB" = the r_call as written; "nloptwrap" = the glmer call with
# control = glmerControl(optimizer = "nloptwrap"); "glmmTMB" on a glmer call = the same
# model in glmmTMB (nAGQ dropped). Writes a JSON list of {case, variant, seconds, median,
# cpu_median (user + system seconds), loglik, error}.

suppressPackageStartupMessages({
  library(jsonlite)
  library(lme4)
  library(glmmTMB)
})

args <- commandArgs(trailingOnly = TRUE)
stopifnot(length(args) == 2)
manifest <- fromJSON(args[[1]], simplifyVector = FALSE)

read_case_data <- function(spec, path) {
  df <- read.csv(path, stringsAsFactors = FALSE)
  for (col in names(spec$factor_levels)) {
    if (col %in% names(df)) {
      lv <- vapply(spec$factor_levels[[col]]$levels, as.character, "")
      df[[col]] <- factor(as.character(df[[col]]), levels = lv)
    }
  }
  df
}

variant_call <- function(cl, variant) {
  head <- as.character(cl[[1]])
  if (variant == "nloptwrap") {
    if (head != "glmer") stop("nloptwrap variant needs a glmer call")
    cl$control <- quote(glmerControl(optimizer = "nloptwrap"))
  } else if (variant == "glmmTMB" && head != "glmmTMB") {
    if (head != "glmer") stop("glmmTMB variant needs a glmer call")
    if (!is.null(cl$nAGQ) && cl$nAGQ > 1) stop("glmmTMB has no AGQ")
    cl[[1]] <- quote(glmmTMB)
    cl$nAGQ <- NULL
    cl$control <- NULL
  }
  cl
}

results <- list()
for (item in manifest) {
  spec <- fromJSON(item$json, simplifyVector = FALSE)
  env <- new.env(parent = globalenv())
  cl <- str2lang(spec$r_call)
  assign(as.character(cl$data), read_case_data(spec, item$data), envir = env)
  for (variant in unlist(item$variants)) {
    rec <- list(case = item$case, variant = variant, seconds = list(), median = NULL,
                loglik = NULL, error = NULL)
    out <- tryCatch({
      vc <- variant_call(cl, variant)
      fit <- NULL
      for (i in seq_len(item$warmup)) fit <- suppressWarnings(suppressMessages(eval(vc, env)))
      secs <- numeric(0)
      cpu <- numeric(0)
      for (i in seq_len(item$reps)) {
        tm <- system.time(fit <- suppressWarnings(suppressMessages(eval(vc, env))))
        secs <- c(secs, tm[["elapsed"]])
        cpu <- c(cpu, tm[["user.self"]] + tm[["sys.self"]])
      }
      rec$seconds <- as.list(secs)
      rec$median <- median(secs)
      rec$cpu_median <- median(cpu)
      rec$loglik <- as.numeric(logLik(fit))
      rec
    }, error = function(e) {
      rec$error <- conditionMessage(e)
      rec
    })
    results[[length(results) + 1]] <- out
    cat(sprintf("R %-22s %-10s %s\n", item$case, variant,
                if (is.null(out$error)) sprintf("%.3f s", out$median) else out$error),
        file = stderr())
  }
}
writeLines(toJSON(results, auto_unbox = TRUE, null = "null", digits = NA), args[[2]])
