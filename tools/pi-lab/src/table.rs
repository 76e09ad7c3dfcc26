//! Plain text tables: the one renderer for every table pi-lab prints.
//!
//! A header line, then one line per row; each column padded to its widest
//! cell, two spaces between columns, no trailing spaces, no box drawing and
//! no colours, so tables read the same in a terminal, in a pipe, in a log
//! and in a test.

use std::fmt;

/// Where a column's cells sit: text to the left, numbers to the right.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Align {
    #[default]
    Left,
    Right,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    header: Vec<String>,
    align: Vec<Align>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Table {
        Table { header: header.into_iter().map(Into::into).collect(), ..Table::default() }
    }

    /// Right-align the columns at these indices.
    pub fn right(mut self, columns: &[usize]) -> Table {
        for &column in columns {
            if self.align.len() <= column {
                self.align.resize(column + 1, Align::Left);
            }
            self.align[column] = Align::Right;
        }
        self
    }

    /// Add a row; it may have fewer or more cells than the header.
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    /// The table with `rows` added.
    pub fn with_rows<R, S>(mut self, rows: impl IntoIterator<Item = R>) -> Table
    where
        R: IntoIterator<Item = S>,
        S: Into<String>,
    {
        for row in rows {
            self.row(row);
        }
        self
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    fn widths(&self) -> Vec<usize> {
        let mut widths = Vec::new();
        for line in std::iter::once(&self.header).chain(&self.rows) {
            for (i, cell) in line.iter().enumerate() {
                let w = cell.chars().count();
                match widths.get_mut(i) {
                    Some(max) => *max = w.max(*max),
                    None => widths.push(w),
                }
            }
        }
        widths
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let widths = self.widths();
        for line in std::iter::once(&self.header).chain(&self.rows) {
            let mut text = String::new();
            for (i, cell) in line.iter().enumerate() {
                if i > 0 {
                    text.push_str("  ");
                }
                let pad = " ".repeat(widths[i].saturating_sub(cell.chars().count()));
                match self.align.get(i).copied().unwrap_or_default() {
                    Align::Left => {
                        text.push_str(cell);
                        text.push_str(&pad);
                    }
                    Align::Right => {
                        text.push_str(&pad);
                        text.push_str(cell);
                    }
                }
            }
            writeln!(f, "{}", text.trim_end())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_by_characters_not_bytes() {
        let table = Table::new(["NODE", "T"]).with_rows([["leaf1", "41.2°C"], ["s", "-"]]);
        assert_eq!(table.to_string(), "NODE   T\nleaf1  41.2°C\ns      -\n");
    }

    #[test]
    fn numbers_align_right_and_no_line_ends_in_spaces() {
        let table = Table::new(["IF", "BITS", "NOTE"])
            .right(&[1])
            .with_rows([vec!["eth1", "1.0k", ""], vec!["eth10", "12.5M", "up"]]);
        assert_eq!(table.to_string(), "IF      BITS  NOTE\neth1    1.0k\neth10  12.5M  up\n");
    }

    #[test]
    fn a_table_without_rows_is_its_header() {
        let table = Table::new(["A", "B"]);
        assert!(table.is_empty());
        assert_eq!(table.to_string(), "A  B\n");
    }

    #[test]
    fn rows_may_be_longer_than_the_header() {
        let table = Table::new(["A"]).with_rows([vec!["x", "extra"]]);
        assert_eq!(table.to_string(), "A\nx  extra\n");
    }
}
