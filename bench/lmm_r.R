# Live lme4 timings for the LMM suite (python -m bench --lmm).
#
# Usage: Rscript bench/lmm_r.R MANIFEST.json OUT.json
# MANIFEST: list of {case, data, formula, REML, weights, factors, reps}. Each case's CSV is read,
# the named columns made factors, and lmer(formula, data, REML, weights) timed `reps` times after
# one untimed fit. Writes {case, elapsed (median s), cpu (median user+system s), first_elapsed,
# first_cpu, logLik, error}.

suppressPackageStartupMessages({
  library(jsonlite)
  library(lme4)
})

args <- commandArgs(trailingOnly = TRUE)
stopifnot(length(args) == 2)
manifest <- fromJSON(args[[1]], simplifyVector = FALSE)

out <- lapply(manifest, function(cs) {
  df <- read.csv(cs$data, stringsAsFactors = FALSE)
  for (f in unlist(cs$factors)) df[[f]] <- factor(df[[f]])
  fit <- function() {
    if (is.null(cs$weights)) lmer(as.formula(cs$formula), data = df, REML = cs$REML)
    else lmer(as.formula(cs$formula), data = df, REML = cs$REML, weights = df[[cs$weights]])
  }
  res <- tryCatch({
    t1 <- system.time(m <- suppressWarnings(suppressMessages(fit())))
    el <- numeric(0); cpu <- numeric(0)
    for (i in seq_len(cs$reps)) {
      t <- system.time(suppressWarnings(suppressMessages(fit())))
      el <- c(el, t[["elapsed"]]); cpu <- c(cpu, t[["user.self"]] + t[["sys.self"]])
    }
    list(case = cs$case, elapsed = median(el), cpu = median(cpu), first_elapsed = t1[["elapsed"]],
         first_cpu = t1[["user.self"]] + t1[["sys.self"]], logLik = as.numeric(logLik(m)), error = NULL)
  }, error = function(e) list(case = cs$case, error = conditionMessage(e)))
  cat(sprintf("R %s: %s\n", cs$case, if (is.null(res$error)) sprintf("%.4f s", res$elapsed) else res$error),
      file = stderr())
  res
})
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, null = "null"), args[[2]])
