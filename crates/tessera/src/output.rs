//! Output: JSON for scripts (`--json`), text for people. Data goes to stdout; warnings and
//! progress go to stderr, so `$(tessera … --json)` captures only the answer.

use std::io::Write;

#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub json: bool,
}

impl Output {
    pub fn print(&self, value: &serde_json::Value, text: impl FnOnce() -> String) {
        let mut stdout = std::io::stdout().lock();
        let rendered = if self.json {
            let mut json = serde_json::to_string_pretty(value).unwrap_or_default();
            json.push('\n');
            json
        } else {
            text()
        };
        // A closed pipe (`| head`) is not an error worth reporting.
        let _ = stdout.write_all(rendered.as_bytes());
        let _ = stdout.flush();
    }

    pub fn warn(&self, message: &str) {
        eprintln!("{message}");
    }

    pub fn key_warning(&self) {
        self.warn("Warning: copy this API key now. It is shown only once and cannot be retrieved later.");
    }
}

/// Left-aligned columns with two spaces between them.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (idx, cell) in row.iter().enumerate() {
            if let Some(width) = widths.get_mut(idx) {
                *width = (*width).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut push_row = |cells: Vec<String>| {
        let line: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(idx, cell)| {
                let pad = widths[idx].saturating_sub(cell.chars().count());
                format!("{cell}{}", " ".repeat(pad))
            })
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    };
    push_row(headers.iter().map(|h| (*h).to_owned()).collect());
    for row in rows {
        push_row(row.clone());
    }
    out
}
