//! The ABI's lists: items each followed by one NUL byte (header values and
//! names, cache tags, log attributes).

/// The items of a list the host wrote, in order.
#[derive(Clone, Debug)]
pub struct Items<'a> {
    rest: &'a [u8],
}

impl<'a> Items<'a> {
    /// The items of `list`. A last item without its NUL still counts.
    pub const fn new(list: &'a [u8]) -> Items<'a> {
        Items { rest: list }
    }
}

impl<'a> Iterator for Items<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        let end = self.rest.iter().position(|&c| c == 0).unwrap_or(self.rest.len());
        let item = &self.rest[..end];
        self.rest = &self.rest[(end + 1).min(self.rest.len())..];
        Some(item)
    }
}

/// Builds a list in a caller's buffer. An item that does not fit, or that
/// holds a NUL, marks the writer failed instead of being cut.
pub(crate) struct ListWriter<'a> {
    buf: &'a mut [u8],
    n: usize,
    ok: bool,
}

impl<'a> ListWriter<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> ListWriter<'a> {
        ListWriter { buf, n: 0, ok: true }
    }

    pub(crate) fn push(&mut self, item: &[u8]) {
        let end = self.n + item.len();
        if !self.ok || end >= self.buf.len() || item.contains(&0) {
            self.ok = false;
            return;
        }
        self.buf[self.n..end].copy_from_slice(item);
        self.buf[end] = 0;
        self.n = end + 1;
    }

    /// The list's length, or None if an item did not fit.
    pub(crate) fn finish(&self) -> Option<usize> {
        if self.ok {
            Some(self.n)
        } else {
            None
        }
    }
}

/// Writes `items` as a list into buf; returns its length, or None when it
/// does not fit or an item holds a NUL byte.
pub fn write_list(buf: &mut [u8], items: &[&[u8]]) -> Option<usize> {
    let mut w = ListWriter::new(buf);
    for it in items {
        w.push(it);
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_and_writer() {
        let mut buf = [0u8; 16];
        let n = write_list(&mut buf, &[b"one", b"", b"two"]).unwrap();
        assert_eq!(&buf[..n], b"one\0\0two\0");
        let got: [&[u8]; 3] = {
            let mut it = Items::new(&buf[..n]);
            [it.next().unwrap(), it.next().unwrap(), it.next().unwrap()]
        };
        assert_eq!(got, [&b"one"[..], b"", b"two"]);
        assert_eq!(Items::new(&buf[..n]).count(), 3);
        assert_eq!(Items::new(b"").count(), 0);
        assert_eq!(Items::new(b"x").next(), Some(&b"x"[..]));
        assert_eq!(write_list(&mut buf, &[b"0123456789abcdef"]), None);
        assert_eq!(write_list(&mut buf, &[b"a\0b"]), None);
    }
}
