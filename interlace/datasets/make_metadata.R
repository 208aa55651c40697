# Regenerates interlace/datasets/data: for each shipped data set, the R package it comes
# from, a one-line description, and every factor column with its levels in R's order (R's
# own stored order, which is what lme4 and glmmTMB use for contrasts and ranef rows); and
# the CSVs of the data sets exported from R (VerbAgg, Contraception, InstEval, Penicillin,
# Dyestuff, Pastes; InstEval gzipped). cbpp, sleepstudy, grouseticks, owls and salamanders
# are copies of the R oracle's frames (tests/fixtures/oracle/data, which include derived
# columns such as cbpp's prop) and are not rewritten here.
#
# Run from the repository root:  Rscript interlace/datasets/make_metadata.R
suppressPackageStartupMessages({
  library(lme4)
  library(glmmTMB)
  library(mlmRev)
  library(jsonlite)
})

out_dir <- "interlace/datasets/data"

# Shortest of 15 / 17 significant digits that round-trips the double exactly.
fmt_num <- function(x) {
  out <- trimws(formatC(x, digits = 15, format = "g"))
  bad <- !is.na(x) & as.numeric(out) != x
  out[bad] <- trimws(formatC(x[bad], digits = 17, format = "g"))
  out[is.na(x)] <- "NA"
  out
}

write_frame <- function(df, file) {
  cols <- lapply(df, function(col) {
    if (is.factor(col)) as.character(col)
    else if (is.integer(col) || is.logical(col)) as.character(as.integer(col))
    else if (is.numeric(col)) fmt_num(col)
    else as.character(col)
  })
  stopifnot(!any(vapply(cols, function(c) any(grepl(",", c)), logical(1))))
  lines <- c(paste(names(df), collapse = ","), do.call(paste, c(cols, sep = ",")))
  path <- file.path(out_dir, file)
  con <- if (grepl("\\.gz$", file)) gzfile(path, "wb") else file(path, "wb")
  writeLines(lines, con)
  close(con)
}

sets <- list(
  cbpp        = list(r_name = "cbpp",        r_package = "lme4",    file = "cbpp.csv",
                     description = "Contagious bovine pleuropneumonia: new cases (incidence) of size animals per herd and period; binomial GLMM"),
  sleepstudy  = list(r_name = "sleepstudy",  r_package = "lme4",    file = "sleepstudy.csv",
                     description = "Reaction times over 10 days of sleep deprivation per Subject; random intercept and slope"),
  grouseticks = list(r_name = "grouseticks", r_package = "lme4",    file = "grouseticks.csv",
                     description = "Ticks on red grouse chicks by BROOD, INDEX and LOCATION; Poisson counts with nested groups"),
  owls        = list(r_name = "Owls",        r_package = "glmmTMB", file = "owls.csv",
                     description = "Sibling negotiation calls of barn owl chicks per Nest, with a log brood-size offset; NB counts"),
  salamanders = list(r_name = "Salamanders", r_package = "glmmTMB", file = "salamanders.csv",
                     description = "Salamander counts per site; zero-inflated counts"),
  verbagg     = list(r_name = "VerbAgg",     r_package = "lme4",    file = "verbagg.csv.gz", export = TRUE,
                     description = "Verbal aggression item responses (r2 = Y/N) by person id and item; crossed binary GLMM"),
  contraception = list(r_name = "Contraception", r_package = "mlmRev", file = "contraception.csv", export = TRUE,
                     description = "Contraceptive use of 1,934 Bangladeshi women (use = Y/N) by district; binomial GLMM with a random slope"),
  insteval    = list(r_name = "InstEval",    r_package = "lme4",    file = "insteval.csv.gz", export = TRUE,
                     description = "73,421 lecture ratings y (1-5) by student s, lecturer d and dept; large crossed random effects"),
  penicillin  = list(r_name = "Penicillin",  r_package = "lme4",    file = "penicillin.csv", export = TRUE,
                     description = "Inhibition zone diameter of 6 penicillin samples on 24 plates; crossed random intercepts"),
  dyestuff    = list(r_name = "Dyestuff",    r_package = "lme4",    file = "dyestuff.csv", export = TRUE,
                     description = "Yield of dyestuff from 6 batches of an intermediate product; one random intercept"),
  pastes      = list(r_name = "Pastes",      r_package = "lme4",    file = "pastes.csv", export = TRUE,
                     description = "Strength of paste from 3 casks in each of 10 delivery batches; nested random effects")
)

out <- list()
for (key in names(sets)) {
  s <- sets[[key]]
  df <- get(s$r_name, envir = asNamespace(s$r_package))
  if (isTRUE(s$export)) write_frame(df, s$file)
  factors <- list()
  for (col in names(df)) {
    if (is.factor(df[[col]])) {
      factors[[col]] <- list(levels = levels(df[[col]]), ordered = is.ordered(df[[col]]))
    }
  }
  out[[key]] <- list(r_name = s$r_name, r_package = s$r_package, file = s$file,
                     description = s$description, nrow = nrow(df), factors = factors)
}
out <- list(
  generated_by = "interlace/datasets/make_metadata.R",
  r_version = R.version.string,
  packages = list(lme4 = as.character(packageVersion("lme4")),
                  glmmTMB = as.character(packageVersion("glmmTMB")),
                  mlmRev = as.character(packageVersion("mlmRev"))),
  datasets = out
)
writeLines(toJSON(out, auto_unbox = TRUE, pretty = TRUE),
           file.path(out_dir, "metadata.json"))
