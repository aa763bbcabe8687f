//! kubectl-style tables: left-aligned columns three spaces apart, with
//! optional colour on cells that say something is wrong.

use std::io::IsTerminal;

/// How a cell is coloured when colour is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// No colour.
    Plain,
    /// Green: `True`.
    Good,
    /// Red: `False`, refusals.
    Bad,
    /// Yellow: `Unknown`, `NoStatus`, `Stale`.
    Warn,
}

/// A table cell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cell {
    /// The text.
    pub text: String,
    /// Its colour.
    pub style: Style,
}

/// A table: headers and rows of cells.
#[derive(Clone, Debug, Default)]
pub struct Table {
    /// Column headers.
    pub headers: Vec<String>,
    /// Rows, each as long as `headers`.
    pub rows: Vec<Vec<Cell>>,
}

/// `--color`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colour when stdout is a terminal and `NO_COLOR` is unset.
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

// === impl Cell ===

impl Cell {
    /// A plain cell.
    pub fn plain(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            style: Style::Plain,
        }
    }

    /// A cell coloured by a condition status (`True`, `False`, other).
    pub fn status(text: impl Into<String>) -> Self {
        let text = text.into();
        let style = match text.as_str() {
            "True" => Style::Good,
            "False" => Style::Bad,
            "-" | "" => Style::Plain,
            _ => Style::Warn,
        };
        Self { text, style }
    }

    /// A cell with a style.
    pub fn styled(text: impl Into<String>, style: Style) -> Self {
        Self {
            text: text.into(),
            style,
        }
    }
}

// === impl Table ===

impl Table {
    /// A table with these headers.
    pub fn new(headers: &[&str]) -> Self {
        Self {
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// Renders the table; each line ends with `\n`.
    pub fn render(&self, headers: bool, color: bool) -> String {
        let columns = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(cell.text.chars().count());
            }
        }
        let mut out = String::new();
        if headers {
            let cells: Vec<Cell> = self.headers.iter().map(Cell::plain).collect();
            line(&mut out, &cells, &widths, false);
        }
        for row in &self.rows {
            line(&mut out, row, &widths, color);
        }
        out
    }
}

fn line(out: &mut String, cells: &[Cell], widths: &[usize], color: bool) {
    let last = cells.len().saturating_sub(1);
    for (i, cell) in cells.iter().enumerate() {
        let code = match (color, cell.style) {
            (true, Style::Good) => Some("32"),
            (true, Style::Bad) => Some("31"),
            (true, Style::Warn) => Some("33"),
            _ => None,
        };
        match code {
            Some(code) => out.push_str(&format!("\x1b[{code}m{}\x1b[0m", cell.text)),
            None => out.push_str(&cell.text),
        }
        if i < last {
            let pad = widths[i].saturating_sub(cell.text.chars().count()) + 3;
            out.extend(std::iter::repeat_n(' ', pad));
        }
    }
    let trimmed = out.trim_end_matches(' ').len();
    out.truncate(trimmed);
    out.push('\n');
}

// === impl ColorChoice ===

impl ColorChoice {
    /// Whether to colour stdout: `NO_COLOR` (non-empty) and non-terminals
    /// turn `auto` off.
    pub fn enabled(self) -> bool {
        match self {
            Self::Always => true,
            Self::Never => false,
            Self::Auto => {
                std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && std::io::stdout().is_terminal()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_and_colours() {
        let mut t = Table::new(&["A", "STATUS", "LAST"]);
        t.rows.push(vec![
            Cell::plain("long-name"),
            Cell::status("False"),
            Cell::plain(""),
        ]);
        t.rows.push(vec![
            Cell::plain("x"),
            Cell::status("True"),
            Cell::plain("z"),
        ]);
        assert_eq!(
            t.render(true, false),
            "A           STATUS   LAST\nlong-name   False\nx           True     z\n"
        );
        assert_eq!(t.render(false, false).lines().count(), 2);
        let coloured = t.render(false, true);
        assert!(coloured.contains("\x1b[31mFalse\x1b[0m"), "{coloured:?}");
        assert!(
            coloured.contains("\x1b[32mTrue\x1b[0m     z"),
            "{coloured:?}"
        );
        assert!(ColorChoice::Always.enabled());
        assert!(!ColorChoice::Never.enabled());
    }
}
