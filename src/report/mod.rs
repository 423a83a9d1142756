//! Reports: Markdown ([`markdown`], tabled) and PNG ([`figures`], plotters) renderers that return
//! strings and bytes, and the one writer that owns paths and writes atomically
//! ([`write_run_report`], [`write_compare_report`]). This module must not compute a metric: it
//! formats what `results.json`, criterion's estimates and a [`Comparison`] already hold.
//!
//! Identical inputs give byte-identical files (when timings are equal): no clock is read, the only
//! date shown is the run's `meta.started_unix`, ordering is fixed, and PNG encoding is
//! deterministic. The summary is rewritten whole each time, so calling the writer after each
//! suite leaves a valid report even when a run is interrupted.

pub mod export;
pub mod figures;
pub mod markdown;

use std::path::{Path, PathBuf};

use crate::bench::criterion_estimates::read_criterion_dir;
use crate::compare::baselines::{published, PublishedRow, PublishedTable};
use crate::compare::{render as compare_render, Comparison};
use crate::io_util::write_atomic;
use crate::results::RunResults;

pub use markdown::{render_summary, SummaryInputs};

/// Which published rows the main table shows beside the run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum BaselineSelection {
    /// Every row of every compiled-in table (secondary sources last).
    #[default]
    All,
    /// No published rows.
    None,
    /// These slugs, in this order (unknown slugs are an error with the list of slugs).
    Only(Vec<String>),
}

/// Options of [`write_run_report`].
#[derive(Debug, Clone, PartialEq)]
pub struct ReportOptions {
    /// criterion's output directory (`target/criterion`) to add benchmark tables and a figure.
    pub criterion_dir: Option<PathBuf>,
    pub baselines: BaselineSelection,
    /// Write the figures (summary.md and the table exports only when false).
    pub figures: bool,
    /// Image formats of the figures (summary.md links the first).
    pub figure_formats: Vec<figures::ImageFormat>,
    /// Width × height of the run figures in pixels (criterion and compare figures grow with their rows).
    pub figure_size: (u32, u32),
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            criterion_dir: None,
            baselines: BaselineSelection::All,
            figures: true,
            figure_formats: vec![figures::ImageFormat::Png, figures::ImageFormat::Svg],
            figure_size: (1200, 900),
        }
    }
}

/// Errors of rendering or writing a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("figure {figure}: {why}\n  hint: this is a bug in the report renderer; results.json and the Markdown summary do not depend on it")]
    Figure { figure: String, why: String },

    #[error("{path}: cannot write the report: {source}\n  hint: check that the run directory is writable")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },

    #[error("no published baseline named {slug:?}\n  hint: published baselines: {available}")]
    UnknownBaseline { slug: String, available: String },

    #[error("figure size {width}x{height} is too small\n  hint: use at least 400x300 pixels")]
    BadSize { width: u32, height: u32 },
}

fn selected_baselines(
    sel: &BaselineSelection,
) -> Result<Vec<(&'static PublishedTable, &'static PublishedRow)>, ReportError> {
    let all = || {
        published()
            .iter()
            .flat_map(|t| t.rows.iter().map(move |r| (t, r)))
    };
    match sel {
        BaselineSelection::All => Ok(all().collect()),
        BaselineSelection::None => Ok(Vec::new()),
        BaselineSelection::Only(slugs) => slugs
            .iter()
            .map(|s| {
                all()
                    .find(|(_, r)| &r.slug == s)
                    .ok_or_else(|| ReportError::UnknownBaseline {
                        slug: s.clone(),
                        available: crate::compare::published_slugs().join(", "),
                    })
            })
            .collect(),
    }
}

/// The main results table (the run's variants and the selected published rows) in `format`,
/// as `report --format` prints it.
pub fn render_main_table(
    results: &RunResults,
    baselines: &BaselineSelection,
    format: export::TableFormat,
) -> Result<String, ReportError> {
    let rows = selected_baselines(baselines)?;
    let (table, _) = export::main_results_table(results, &rows, Some(2));
    Ok(table.render(format))
}

/// Everything a run report consists of, rendered in memory: `(file name, bytes)` in write order.
pub fn render_run_report(
    results: &RunResults,
    opts: &ReportOptions,
) -> Result<Vec<(String, Vec<u8>)>, ReportError> {
    let (w, h) = opts.figure_size;
    if opts.figures && (w < 400 || h < 300) {
        return Err(ReportError::BadSize {
            width: w,
            height: h,
        });
    }
    let baselines = selected_baselines(&opts.baselines)?;
    let (estimates, unreadable) = match &opts.criterion_dir {
        Some(dir) => read_criterion_dir(dir),
        None => (Vec::new(), Vec::new()),
    };
    let datasets = results.datasets();
    if datasets.iter().all(Option::is_none) {
        let (mut files, inputs) =
            dataset_files(results, "", &baselines, &estimates, &unreadable, opts)?;
        let summary = render_summary(results, &inputs);
        // summary.md last: when it exists, the figures it links exist too.
        files.push(("summary.md".into(), summary.into_bytes()));
        return Ok(files);
    }
    // Several datasets: a section per dataset in summary.md, each with its own figures and
    // exports in a folder named after the dataset (results' names are plain, so safe).
    let mut files = Vec::new();
    let mut summary = format!(
        "# riveg-bench run `{}`
",
        results.run_id
    );
    summary.push_str(&markdown::datasets_overview(results));
    for d in &datasets {
        let name = d.as_deref().unwrap_or("data");
        let sub = results.for_dataset(d.as_deref());
        let (figs, inputs) = dataset_files(
            &sub,
            &format!("{name}/"),
            &baselines,
            &estimates,
            &unreadable,
            opts,
        )?;
        files.extend(figs);
        summary.push_str(&format!("\n## Dataset `{name}`\n\n"));
        summary.push_str(&markdown::demote_headings(&markdown::render_sections(
            &sub, &inputs,
        )));
    }
    files.push(("summary.md".into(), summary.into_bytes()));
    Ok(files)
}

/// Rendered report files: `(file name, bytes)` in write order.
type RenderedFiles = Vec<(String, Vec<u8>)>;

/// The figures and exports of one dataset's results (file names prefixed with `prefix`), and
/// the summary's inputs that link them.
fn dataset_files<'a>(
    results: &RunResults,
    prefix: &str,
    baselines: &[(&'static PublishedTable, &'static PublishedRow)],
    estimates: &'a [crate::bench::criterion_estimates::CriterionEstimate],
    unreadable: &[PathBuf],
    opts: &ReportOptions,
) -> Result<(RenderedFiles, SummaryInputs<'a>), ReportError> {
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut captions = Vec::new();
    if opts.figures {
        let (figs, caps) =
            figures::run_figures(results, estimates, opts.figure_size, &opts.figure_formats)?;
        files.extend(figs.into_iter().map(|(n, b)| (format!("{prefix}{n}"), b)));
        captions = caps
            .into_iter()
            .map(|(n, c)| (format!("{prefix}{n}"), c))
            .collect();
    }
    let exports: Vec<(String, Vec<u8>)> = export::run_exports(results, baselines)
        .into_iter()
        .map(|(n, b)| (format!("{prefix}{n}"), b))
        .collect();
    let export_names: Vec<String> = exports.iter().map(|(n, _)| n.clone()).collect();
    files.extend(exports);
    let inputs = SummaryInputs {
        baselines: baselines.to_vec(),
        criterion: estimates,
        criterion_dir: opts.criterion_dir.as_ref().map(|d| d.display().to_string()),
        criterion_unreadable: unreadable.iter().map(|p| p.display().to_string()).collect(),
        figures: captions,
        exports: export_names,
        other_figure_formats: if opts.figures {
            opts.figure_formats
                .iter()
                .skip(1)
                .map(|f| f.extension().to_string())
                .collect()
        } else {
            Vec::new()
        },
    };
    Ok((files, inputs))
}

fn write_all(dir: &Path, files: Vec<(String, Vec<u8>)>) -> Result<Vec<PathBuf>, ReportError> {
    let mut written = Vec::with_capacity(files.len());
    for (name, bytes) in files {
        let path = dir.join(&name);
        write_atomic(&path, &bytes).map_err(|e| ReportError::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        written.push(path);
    }
    Ok(written)
}

/// Writes `summary.md` and the PNG figures into `run_dir` (atomically, each file); returns the
/// paths written, figures first and `summary.md` last.
pub fn write_run_report(
    run_dir: &Path,
    results: &RunResults,
    opts: &ReportOptions,
) -> Result<Vec<PathBuf>, ReportError> {
    let files = render_run_report(results, opts)?;
    write_all(run_dir, files)
}

/// Writes `compare.md`, `compare.json` and `compare_deltas.png`/`.svg` into `dir`; returns the paths.
pub fn write_compare_report(
    dir: &Path,
    comparison: &Comparison,
    figure_width: u32,
) -> Result<Vec<PathBuf>, ReportError> {
    let files = vec![
        (
            "compare_deltas.png".to_string(),
            figures::compare_chart(comparison, figure_width.max(400))?,
        ),
        (
            "compare_deltas.svg".to_string(),
            figures::compare_figure(comparison, figure_width.max(400), figures::ImageFormat::Svg)?,
        ),
        (
            "compare.json".to_string(),
            compare_render::render_json(comparison).into_bytes(),
        ),
        (
            "compare.md".to_string(),
            compare_markdown(comparison).into_bytes(),
        ),
    ];
    write_all(dir, files)
}

fn compare_markdown(c: &Comparison) -> String {
    let mut md = compare_render::render_markdown(c);
    md.push_str("\n![deltas with confidence intervals](compare_deltas.png)\n");
    md
}
