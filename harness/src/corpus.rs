//! The regression corpus: `.ovl` files loaded from files or folders, and
//! minimized divergences saved atomically under their content hash.

use ovlcheck_case::{parse_case, print_case, Case, ParseError};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Why loading failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("{0}")]
    Parse(#[from] ParseError),
}

/// Reads and parses one case file.
pub fn load_case(path: &Path) -> Result<Case, LoadError> {
    load_case_with_header(path).map(|(case, _)| case)
}

/// [`load_case`], plus the file's leading comment block (its `#` lines and
/// the blank lines among them, as written), which the case itself does not
/// keep: `run --pin` prints it back above the pinned case.
pub fn load_case_with_header(path: &Path) -> Result<(Case, String), LoadError> {
    let text = read_limited(path)?;
    let case = parse_case(&path.display().to_string(), &text)?;
    Ok((case, leading_comments(&text).to_string()))
}

/// The leading lines of `text` that are comments or blank.
fn leading_comments(text: &str) -> &str {
    let mut end = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim();
        if !(t.is_empty() || t.starts_with('#')) {
            break;
        }
        end += line.len();
    }
    &text[..end]
}

fn read_limited(path: &Path) -> Result<String, LoadError> {
    let io = |error| LoadError::Io {
        path: path.display().to_string(),
        error,
    };
    let meta = fs::metadata(path).map_err(io)?;
    let limit = ovlcheck_case::text::limits::MAX_INPUT_BYTES as u64;
    if meta.len() > limit {
        return Err(LoadError::Io {
            path: path.display().to_string(),
            error: std::io::Error::other(format!(
                "file is {} bytes; the limit is {limit}",
                meta.len()
            )),
        });
    }
    let bytes = fs::read(path).map_err(io)?;
    String::from_utf8(bytes).map_err(|e| LoadError::Parse(utf8_error(path, &e)))
}

fn utf8_error(path: &Path, e: &std::string::FromUtf8Error) -> ParseError {
    let bytes = e.as_bytes();
    let at = e.utf8_error().valid_up_to();
    let line = bytes[..at].iter().filter(|b| **b == b'\n').count() + 1;
    let column = at
        - bytes[..at]
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |p| p + 1)
        + 1;
    ParseError {
        file: path.display().to_string(),
        line,
        column,
        message: "file is not valid UTF-8 (use \\xNN escapes inside strings)".into(),
    }
}

/// Every `.ovl` file under the given files and folders, sorted, folders
/// walked recursively.
pub fn collect(paths: &[PathBuf]) -> Result<Vec<PathBuf>, LoadError> {
    let mut out = Vec::new();
    for p in paths {
        walk(p, &mut out)?;
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn walk(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), LoadError> {
    let io = |error| LoadError::Io {
        path: path.display().to_string(),
        error,
    };
    let meta = fs::metadata(path).map_err(io)?;
    if meta.is_dir() {
        for entry in fs::read_dir(path).map_err(io)? {
            let entry = entry.map_err(io)?;
            let p = entry.path();
            if p.is_dir() || p.extension().is_some_and(|e| e == "ovl") {
                walk(&p, out)?;
            }
        }
    } else {
        out.push(path.to_path_buf());
    }
    Ok(())
}

/// The file name a case is saved under: its content hash.
pub fn file_name(case: &Case) -> String {
    let text = print_case(case);
    let hash = blake3::hash(text.as_bytes()).to_hex();
    format!("{}.ovl", &hash[..16])
}

/// Writes `text` for `case` into `dir` atomically (temporary file, fsync,
/// hard link to the final name), never overwriting an existing file. Returns
/// the path, whether newly written or already there with that content.
pub fn save(dir: &Path, case: &Case, text: &str) -> std::io::Result<PathBuf> {
    fs::create_dir_all(dir)?;
    let target = dir.join(file_name(case));
    if target.exists() {
        return Ok(target);
    }
    let mut tmp = tempfile_in(dir)?;
    tmp.1.write_all(text.as_bytes())?;
    tmp.1.sync_all()?;
    let linked = fs::hard_link(&tmp.0, &target);
    let _ = fs::remove_file(&tmp.0);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(target)
}

fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, fs::File)> {
    for i in 0..1000u32 {
        let p = dir.join(format!(".tmp-{}-{i}.ovl-partial", std::process::id()));
        match fs::OpenOptions::new().write(true).create_new(true).open(&p) {
            Ok(f) => return Ok((p, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("could not create a temporary file"))
}
