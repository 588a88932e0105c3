//! A reader that counts the bytes it hands out and stops at the limits of [`super::limits`]:
//! the whole file, an archive entry's compression ratio, and one piece of it (a JSON entry, a
//! CSV line) since the parser last called [`Meter::mark`]. The count is of bytes actually read,
//! after decompression: an archive's declared sizes are not trusted.
//!
//! When a limit is passed the read fails and the [`Meter`] keeps why, so the caller reports
//! that instead of the parser's own error.

use std::cell::{Cell, RefCell};
use std::io::{self, Read};

use super::limits::{ByteSize, MAX_COMPRESSION_RATIO, RATIO_FLOOR};

/// The counts and limits of one file, shared by the reader and the parser above it.
pub(super) struct Meter {
    read: Cell<u64>,
    limit: u64,
    /// For an archive entry, the most bytes its compressed size allows.
    ratio_limit: Option<u64>,
    since_mark: Cell<u64>,
    piece_limit: Cell<u64>,
    piece: Cell<&'static str>,
    refusal: RefCell<Option<String>>,
}

impl Meter {
    /// A meter stopping after `limit` bytes of the file.
    pub(super) fn new(limit: u64) -> Meter {
        Meter {
            read: Cell::new(0),
            limit,
            ratio_limit: None,
            since_mark: Cell::new(0),
            piece_limit: Cell::new(u64::MAX),
            piece: Cell::new("piece"),
            refusal: RefCell::new(None),
        }
    }

    /// Also stops when an archive entry of `compressed` bytes inflates past the ratio guard.
    pub(super) fn compressed(mut self, compressed: u64) -> Meter {
        let allowed = compressed.saturating_mul(MAX_COMPRESSION_RATIO);
        self.ratio_limit = Some(allowed.max(RATIO_FLOOR));
        self
    }

    /// Starts a new piece (`what`, e.g. "JSON entry"), which may be at most `limit` bytes.
    /// Parsers read ahead a few KiB, so the bound holds to within their buffer.
    pub(super) fn mark(&self, what: &'static str, limit: u64) {
        self.since_mark.set(0);
        self.piece_limit.set(limit);
        self.piece.set(what);
    }

    /// Why reading stopped at a limit, if it did.
    pub(super) fn refusal(&self) -> Option<String> {
        self.refusal.borrow().clone()
    }

    /// How many more bytes may be read before a limit is passed.
    fn remaining(&self) -> u64 {
        let read = self.read.get();
        let total = self.limit.min(self.ratio_limit.unwrap_or(u64::MAX));
        let piece = self.piece_limit.get().saturating_sub(self.since_mark.get());
        total.saturating_sub(read).min(piece)
    }

    /// Counts `n` bytes; `Err` once a limit is passed.
    fn count(&self, n: u64) -> Result<(), String> {
        let read = self.read.get() + n;
        self.read.set(read);
        self.since_mark.set(self.since_mark.get() + n);
        if read > self.limit {
            return Err(format!(
                "larger than the {} limit on one export file; not read (raise it with \
                 --max-entry-bytes or WEARHOUSE_IMPORT_MAX_ENTRY_BYTES if the file is genuine)",
                ByteSize(self.limit)
            ));
        }
        if let Some(allowed) = self.ratio_limit
            && read > allowed
        {
            return Err(format!(
                "decompresses to more than {MAX_COMPRESSION_RATIO} times its compressed size, \
                 as archive bombs do; not read (if the file is genuine, unpack the archive and \
                 import the folder)"
            ));
        }
        if self.since_mark.get() > self.piece_limit.get() {
            return Err(format!(
                "has a {} longer than {}, which export files do not have; not read",
                self.piece.get(),
                ByteSize(self.piece_limit.get())
            ));
        }
        Ok(())
    }
}

/// `inner`, read through a [`Meter`].
pub(super) struct Metered<'m, R> {
    pub(super) inner: R,
    pub(super) meter: &'m Meter,
}

impl<R: Read> Read for Metered<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(why) = self.meter.refusal() {
            return Err(io::Error::other(why));
        }
        // One byte past the tightest limit is enough to know it is passed, so a bomb is never
        // inflated further than that.
        let want = usize::try_from(self.meter.remaining().saturating_add(1))
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self.inner.read(&mut buf[..want])?;
        if let Err(why) = self.meter.count(n as u64) {
            *self.meter.refusal.borrow_mut() = Some(why.clone());
            return Err(io::Error::other(why));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(meter: &Meter, input: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        Metered {
            inner: input,
            meter,
        }
        .read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn reading_stops_one_byte_past_the_file_limit_and_says_which() {
        let meter = Meter::new(10);
        assert_eq!(read_all(&meter, b"0123456789").unwrap().len(), 10);
        let meter = Meter::new(10);
        let err = read_all(&meter, &[b'x'; 1000]).unwrap_err();
        assert!(err.to_string().contains("larger than the 10 bytes limit"));
        assert_eq!(meter.read.get(), 11);
        assert!(meter.refusal().unwrap().contains("--max-entry-bytes"));
    }

    #[test]
    fn an_entry_inflating_past_the_ratio_stops_after_the_floor() {
        let meter = Meter::new(u64::MAX).compressed(10);
        let err = read_all(&meter, &vec![0; 2 * RATIO_FLOOR as usize]).unwrap_err();
        assert!(err.to_string().contains("archive bombs"), "{err}");
        assert_eq!(meter.read.get(), RATIO_FLOOR + 1);
    }

    #[test]
    fn a_piece_longer_than_its_limit_stops_and_marking_starts_a_new_one() {
        let meter = Meter::new(u64::MAX);
        meter.mark("CSV line", 4);
        let mut r = Metered {
            inner: &b"abcdefgh"[..],
            meter: &meter,
        };
        let mut buf = [0; 4];
        r.read_exact(&mut buf).unwrap();
        meter.mark("CSV line", 4);
        r.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"efgh");
        let meter = Meter::new(u64::MAX);
        meter.mark("CSV line", 4);
        let err = read_all(&meter, b"abcdefgh").unwrap_err();
        assert!(err.to_string().contains("a CSV line longer than 4 bytes"));
    }
}
