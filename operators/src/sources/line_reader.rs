use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// Reads the lines of a byte range of a file, the way parallel readers split a file: a range
/// owns every line that *starts* inside it, so ranges that tile a file read each line once.
///
/// Lines are returned without their `\n` (and `\r`), with the byte offset they start at.
pub struct LineReader {
    file: File,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    buf_offset: u64,
    pos: usize,
    filled: usize,
    eof: bool,
    end: u64,
    done: bool,
}

const INITIAL_BUFFER: usize = 1 << 20;

impl LineReader {
    /// Opens `path` for the lines starting in `[start, end)`.
    ///
    /// # Errors
    /// When the file cannot be opened or positioned.
    pub fn open(path: &Path, start: u64, end: u64) -> io::Result<Self> {
        Self::with_buffer(path, start, end, Vec::new())
    }

    /// Like [`LineReader::open`], reusing `buf` (e.g. from [`LineReader::into_buffer`]) so
    /// reading many ranges does not allocate and zero a fresh buffer for each.
    ///
    /// # Errors
    /// When the file cannot be opened or positioned.
    pub fn with_buffer(path: &Path, start: u64, end: u64, mut buf: Vec<u8>) -> io::Result<Self> {
        if buf.len() < INITIAL_BUFFER {
            buf.resize(INITIAL_BUFFER, 0);
        }
        let mut file = File::open(path)?;
        let seek_to = start.saturating_sub(1);
        file.seek(SeekFrom::Start(seek_to))?;
        let mut reader = LineReader {
            file,
            buf,
            buf_offset: seek_to,
            pos: 0,
            filled: 0,
            eof: false,
            end,
            done: false,
        };
        if start > 0 {
            // The line through byte `start - 1` belongs to the previous range.
            reader.next_span()?;
        }
        Ok(reader)
    }

    /// Gives back the buffer for the next range.
    pub fn into_buffer(self) -> Vec<u8> {
        self.buf
    }

    /// Offset of the next byte to be read.
    pub fn position(&self) -> u64 {
        self.buf_offset + self.pos as u64
    }

    /// The next line and its starting offset, or `None` past the range.
    ///
    /// # Errors
    /// When reading the file fails.
    pub fn next_line(&mut self) -> io::Result<Option<(u64, &[u8])>> {
        if self.done || self.position() >= self.end {
            self.done = true;
            return Ok(None);
        }
        match self.next_span()? {
            Some((offset, from, to)) => {
                let mut line = &self.buf[from..to];
                if line.last() == Some(&b'\r') {
                    line = &line[..line.len() - 1];
                }
                Ok(Some((offset, line)))
            }
            None => {
                self.done = true;
                Ok(None)
            }
        }
    }

    /// Finds the next line; returns its offset and its bounds in `buf`.
    fn next_span(&mut self) -> io::Result<Option<(u64, usize, usize)>> {
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[self.pos..self.filled]) {
                let from = self.pos;
                let offset = self.buf_offset + from as u64;
                self.pos = from + i + 1;
                return Ok(Some((offset, from, from + i)));
            }
            if self.eof {
                if self.pos < self.filled {
                    let from = self.pos;
                    let offset = self.buf_offset + from as u64;
                    self.pos = self.filled;
                    return Ok(Some((offset, from, self.filled)));
                }
                return Ok(None);
            }
            self.refill()?;
        }
    }

    fn refill(&mut self) -> io::Result<()> {
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.filled, 0);
            self.filled -= self.pos;
            self.buf_offset += self.pos as u64;
            self.pos = 0;
        }
        if self.filled == self.buf.len() {
            // A line longer than the buffer: grow it.
            self.buf.resize(self.buf.len() * 2, 0);
        }
        let n = self.file.read(&mut self.buf[self.filled..])?;
        if n == 0 {
            self.eof = true;
        }
        self.filled += n;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn lines_in(path: &Path, start: u64, end: u64) -> Vec<(u64, String)> {
        let mut r = LineReader::open(path, start, end).unwrap();
        let mut v = Vec::new();
        while let Some((o, l)) = r.next_line().unwrap() {
            v.push((o, String::from_utf8(l.to_vec()).unwrap()));
        }
        v
    }

    #[test]
    fn ranges_tile_the_file_exactly() {
        let dir = std::env::temp_dir().join(format!("sluice-lines-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f.txt");
        let mut f = File::create(&path).unwrap();
        let content = "alpha\nbe\r\n\ngamma-delta\nx\nlast-no-newline";
        f.write_all(content.as_bytes()).unwrap();
        drop(f);
        let len = content.len() as u64;
        let whole = lines_in(&path, 0, len);
        assert_eq!(whole.len(), 6);
        assert_eq!(whole[1], (6, "be".to_string()));
        for cut1 in 0..=len {
            for cut2 in cut1..=len {
                let mut parts = lines_in(&path, 0, cut1);
                parts.extend(lines_in(&path, cut1, cut2));
                parts.extend(lines_in(&path, cut2, len));
                assert_eq!(parts, whole, "cuts at {cut1} and {cut2}");
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
