//! Where commands write: aligned tables for people (coloured only on a
//! terminal), JSON for scripts, progress bars on long work, and prompts.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

/// Writing output failed (a closed pipe, say).
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The terminal or pipe could not be written or read.
    #[error("cannot write output: {0}")]
    Io(#[from] std::io::Error),
    /// A value could not be turned into JSON.
    #[error("cannot encode JSON output: {0}")]
    Json(#[from] serde_json::Error),
}

/// How a piece of text is shown on a colour terminal.
///
/// ```
/// let out = hopper_cli::output::Output::buffer();
/// // A buffer is not a terminal: no colour codes.
/// assert_eq!(out.paint(hopper_cli::output::Style::Red, "failed"), "failed");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// Unstyled.
    Plain,
    /// Headers and names.
    Bold,
    /// Secondary detail.
    Dim,
    /// Success, finished jobs.
    Green,
    /// Waiting, paused.
    Yellow,
    /// Failure.
    Red,
    /// Running, identifiers.
    Cyan,
}

impl Style {
    fn code(self) -> &'static str {
        match self {
            Style::Plain => "",
            Style::Bold => "1",
            Style::Dim => "2",
            Style::Green => "32",
            Style::Yellow => "33",
            Style::Red => "31",
            Style::Cyan => "36",
        }
    }
}

#[derive(Clone, Debug)]
enum Sink {
    Stdout,
    Buffer(Arc<Mutex<Vec<u8>>>),
}

/// The place a command writes to: standard output, or a buffer in tests.
///
/// ```
/// let mut out = hopper_cli::output::Output::buffer();
/// out.line("hello").unwrap();
/// assert_eq!(out.text(), "hello\n");
/// ```
#[derive(Clone, Debug)]
pub struct Output {
    sink: Sink,
    color: bool,
    interactive: bool,
}

impl Output {
    /// Standard output: colour when it is a terminal (and `NO_COLOR` is
    /// unset); prompts when standard input is a terminal too.
    ///
    /// ```
    /// let out = hopper_cli::output::Output::stdout();
    /// # let _ = out;
    /// ```
    pub fn stdout() -> Self {
        let terminal = std::io::stdout().is_terminal();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Self {
            sink: Sink::Stdout,
            color: terminal && !no_color,
            interactive: terminal && std::io::stdin().is_terminal(),
        }
    }

    /// An in-memory buffer, never a terminal: read it back with [`Output::text`].
    ///
    /// ```
    /// let out = hopper_cli::output::Output::buffer();
    /// assert!(!out.is_interactive());
    /// ```
    pub fn buffer() -> Self {
        Self {
            sink: Sink::Buffer(Arc::default()),
            color: false,
            interactive: false,
        }
    }

    /// Everything written so far to a buffer (empty for standard output).
    ///
    /// ```
    /// let out = hopper_cli::output::Output::buffer();
    /// assert_eq!(out.text(), "");
    /// ```
    pub fn text(&self) -> String {
        match &self.sink {
            Sink::Stdout => String::new(),
            Sink::Buffer(buffer) => {
                let bytes = buffer.lock().unwrap_or_else(|p| p.into_inner());
                String::from_utf8_lossy(&bytes).into_owned()
            }
        }
    }

    /// Whether a person is at a terminal to answer prompts.
    ///
    /// ```
    /// assert!(!hopper_cli::output::Output::buffer().is_interactive());
    /// ```
    pub fn is_interactive(&self) -> bool {
        self.interactive
    }

    /// Writes `text` and a newline.
    ///
    /// ```
    /// let mut out = hopper_cli::output::Output::buffer();
    /// out.line("a").unwrap();
    /// out.line("b").unwrap();
    /// assert_eq!(out.text(), "a\nb\n");
    /// ```
    pub fn line(&mut self, text: impl AsRef<str>) -> Result<(), OutputError> {
        self.write(&format!("{}\n", text.as_ref()))
    }

    fn write(&mut self, text: &str) -> Result<(), OutputError> {
        match &self.sink {
            Sink::Stdout => {
                let mut stdout = std::io::stdout().lock();
                stdout.write_all(text.as_bytes())?;
                stdout.flush()?;
            }
            Sink::Buffer(buffer) => buffer
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend_from_slice(text.as_bytes()),
        }
        Ok(())
    }

    /// Writes `value` as pretty JSON.
    ///
    /// ```
    /// let mut out = hopper_cli::output::Output::buffer();
    /// out.json(&serde_json::json!({"ok": true})).unwrap();
    /// assert_eq!(serde_json::from_str::<serde_json::Value>(&out.text()).unwrap()["ok"], true);
    /// ```
    pub fn json<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), OutputError> {
        let text = serde_json::to_string_pretty(value)?;
        self.line(text)
    }

    /// `text` in `style` on a colour terminal, plain otherwise.
    ///
    /// ```
    /// let out = hopper_cli::output::Output::buffer();
    /// assert_eq!(out.paint(hopper_cli::output::Style::Bold, "x"), "x");
    /// ```
    pub fn paint(&self, style: Style, text: &str) -> String {
        if !self.color || style == Style::Plain {
            return text.to_owned();
        }
        format!("\x1b[{}m{text}\x1b[0m", style.code())
    }

    /// Writes `table` with its columns aligned.
    ///
    /// ```
    /// use hopper_cli::output::{Output, Table};
    /// let mut table = Table::new(["ID", "TYPE"]);
    /// table.row(["1", "send_email"]);
    /// let mut out = Output::buffer();
    /// out.table(&table).unwrap();
    /// assert_eq!(out.text(), "ID  TYPE\n1   send_email\n");
    /// ```
    pub fn table(&mut self, table: &Table) -> Result<(), OutputError> {
        let header = (!table.header.is_empty()).then_some(&table.header);
        let rows: Vec<&Vec<Cell>> = header.into_iter().chain(&table.rows).collect();
        let columns = rows.iter().map(|row| row.len()).max().unwrap_or(0);
        let mut widths = vec![0; columns];
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row.iter()) {
                *width = (*width).max(cell.text.chars().count());
            }
        }
        let mut text = String::new();
        for row in rows {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                line.push_str(&self.paint(cell.style, &cell.text));
                if i + 1 < row.len() {
                    let pad = widths[i] - cell.text.chars().count();
                    line.push_str(&" ".repeat(pad + 2));
                }
            }
            text.push_str(line.trim_end());
            text.push('\n');
        }
        self.write(&text)
    }

    /// A progress bar on standard error for `total` steps (a spinner when
    /// the total is unknown); drawn only on a terminal.
    ///
    /// ```
    /// let out = hopper_cli::output::Output::buffer();
    /// let bar = out.progress(Some(10), "seeding");
    /// bar.inc(10);
    /// bar.finish();
    /// assert_eq!(bar.position(), 10);
    /// ```
    pub fn progress(&self, total: Option<u64>, message: &str) -> Progress {
        let visible = matches!(self.sink, Sink::Stdout) && std::io::stderr().is_terminal();
        let bar = match total {
            Some(total) => indicatif::ProgressBar::new(total),
            None => indicatif::ProgressBar::new_spinner(),
        };
        if visible {
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            let template = if total.is_some() {
                "{msg} [{bar:30}] {pos}/{len} ({elapsed})"
            } else {
                "{spinner} {msg} {pos} ({elapsed})"
            };
            if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.enable_steady_tick(Duration::from_millis(120));
        } else {
            bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        bar.set_message(message.to_owned());
        Progress { bar }
    }

    /// Asks `question` on the terminal and returns the answer, or `default`
    /// when the answer is empty.
    pub fn prompt(&mut self, question: &str, default: &str) -> Result<String, OutputError> {
        self.write(&format!("{question} [{default}]: "))?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        let answer = answer.trim();
        Ok(if answer.is_empty() {
            default.to_owned()
        } else {
            answer.to_owned()
        })
    }
}

/// One cell of a [`Table`]: its text and how it is shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cell {
    /// The text.
    pub text: String,
    /// Its style on a colour terminal.
    pub style: Style,
}

impl<T: Into<String>> From<T> for Cell {
    fn from(text: T) -> Self {
        Self {
            text: text.into(),
            style: Style::Plain,
        }
    }
}

impl Cell {
    /// A cell shown in `style`.
    ///
    /// ```
    /// let cell = hopper_cli::output::Cell::styled("failed", hopper_cli::output::Style::Red);
    /// assert_eq!(cell.text, "failed");
    /// ```
    pub fn styled(text: impl Into<String>, style: Style) -> Self {
        Self {
            text: text.into(),
            style,
        }
    }
}

/// Rows under a header (or none, for `Table::default()`), written by [`Output::table`].
///
/// ```
/// let mut table = hopper_cli::output::Table::new(["A", "B"]);
/// table.row(["1", "2"]);
/// assert_eq!(table.len(), 1);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Table {
    header: Vec<Cell>,
    rows: Vec<Vec<Cell>>,
}

impl Table {
    /// A table with these column titles.
    ///
    /// ```
    /// assert!(hopper_cli::output::Table::new(["A"]).is_empty());
    /// ```
    pub fn new<const N: usize>(header: [&str; N]) -> Self {
        Self {
            header: header
                .iter()
                .map(|title| Cell::styled(*title, Style::Bold))
                .collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (missing cells are blank, extra ones dropped).
    ///
    /// ```
    /// let mut table = hopper_cli::output::Table::new(["A", "B"]);
    /// table.row(["only a"]);
    /// assert_eq!(table.len(), 1);
    /// ```
    pub fn row<C: Into<Cell>>(&mut self, cells: impl IntoIterator<Item = C>) -> &mut Self {
        let mut row: Vec<Cell> = cells.into_iter().map(Into::into).collect();
        if !self.header.is_empty() {
            row.resize(self.header.len(), Cell::from(""));
        }
        self.rows.push(row);
        self
    }

    /// How many rows.
    ///
    /// ```
    /// assert_eq!(hopper_cli::output::Table::new(["A"]).len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no rows.
    ///
    /// ```
    /// assert!(hopper_cli::output::Table::new(["A"]).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// A progress bar (see [`Output::progress`]).
///
/// ```
/// let bar = hopper_cli::output::Output::buffer().progress(None, "pruning");
/// bar.inc(3);
/// assert_eq!(bar.position(), 3);
/// ```
#[derive(Clone, Debug)]
pub struct Progress {
    bar: indicatif::ProgressBar,
}

impl Progress {
    /// Sets the total (turning a spinner into a bar).
    ///
    /// ```
    /// let bar = hopper_cli::output::Output::buffer().progress(None, "x");
    /// bar.set_length(5);
    /// ```
    pub fn set_length(&self, total: u64) {
        self.bar.set_length(total);
    }

    /// Counts `n` more steps done.
    ///
    /// ```
    /// let bar = hopper_cli::output::Output::buffer().progress(Some(2), "x");
    /// bar.inc(1);
    /// assert_eq!(bar.position(), 1);
    /// ```
    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
    }

    /// Replaces the message shown beside the bar.
    ///
    /// ```
    /// let bar = hopper_cli::output::Output::buffer().progress(Some(2), "x");
    /// bar.set_message("y");
    /// ```
    pub fn set_message(&self, message: &str) {
        self.bar.set_message(message.to_owned());
    }

    /// Steps done so far.
    ///
    /// ```
    /// assert_eq!(hopper_cli::output::Output::buffer().progress(None, "x").position(), 0);
    /// ```
    pub fn position(&self) -> u64 {
        self.bar.position()
    }

    /// Removes the bar from the terminal.
    ///
    /// ```
    /// hopper_cli::output::Output::buffer().progress(None, "x").finish();
    /// ```
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
