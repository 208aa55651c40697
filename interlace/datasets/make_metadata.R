# Regenerates interlace/datasets/data/metadata.json: for each shipped data set, the R
# package it comes from and every factor column with its levels in R's order (R's own
# stored order, which is what lme4 and glmmTMB use for contrasts and ranef rows).
# The CSVs themselves are copies of ../shared/oracle/data (the exact frames the R
# reference fits used, including derived columns such as cbpp's prop).
#
# Run from the repository root:  Rscript interlace/datasets/make_metadata.R
suppressPackageStartupMessages({
  library(lme4)
  library(glmmTMB)
  library(jsonlite)
})

sets <- list(
  cbpp        = list(r_name = "cbpp",        r_package = "lme4",    file = "cbpp.csv"),
  sleepstudy  = list(r_name = "sleepstudy",  r_package = "lme4",    file = "sleepstudy.csv"),
  grouseticks = list(r_name = "grouseticks", r_package = "lme4",    file = "grouseticks.csv"),
  owls        = list(r_name = "Owls",        r_package = "glmmTMB", file = "owls.csv"),
  salamanders = list(r_name = "Salamanders", r_package = "glmmTMB", file = "salamanders.csv")
)

out <- list()
for (key in names(sets)) {
  s <- sets[[key]]
  df <- get(s$r_name, envir = asNamespace(s$r_package))
  factors <- list()
  for (col in names(df)) {
    if (is.factor(df[[col]])) {
      factors[[col]] <- list(levels = levels(df[[col]]), ordered = is.ordered(df[[col]]))
    }
  }
  out[[key]] <- list(r_name = s$r_name, r_package = s$r_package, file = s$file,
                     factors = factors)
}
out <- list(
  generated_by = "interlace/datasets/make_metadata.R",
  r_version = R.version.string,
  packages = list(lme4 = as.character(packageVersion("lme4")),
                  glmmTMB = as.character(packageVersion("glmmTMB"))),
  datasets = out
)
writeLines(toJSON(out, auto_unbox = TRUE, pretty = TRUE),
           "interlace/datasets/data/metadata.json")
