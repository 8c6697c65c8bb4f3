//! Reads the server_name extension out of a ClientHello, for `info()` on the server side
//! (rustls's unbuffered server connection does not expose it). Only reads; any malformed
//! or fragmented input gives `None` and rustls judges the bytes as usual.

/// Parses the first TLS record in `buf` as a ClientHello and returns its host name.
pub(super) fn client_hello_sni(buf: &[u8]) -> Option<String> {
    let mut r = Reader(buf);
    if r.u8()? != 22 {
        return None; // not a handshake record
    }
    r.take(2)?; // legacy record version
    let len = r.u16()?;
    let record = r.take(usize::from(len))?;
    let mut r = Reader(record);
    if r.u8()? != 1 {
        return None; // not a ClientHello
    }
    let len = r.u24()?;
    let body = r.take(len)?; // a ClientHello split over records is not parsed
    let mut r = Reader(body);
    r.take(2 + 32)?; // legacy version, random
    r.vec8()?; // session id
    r.vec16()?; // cipher suites
    r.vec8()?; // compression methods
    let mut exts = Reader(r.vec16()?);
    while !exts.0.is_empty() {
        let typ = exts.u16()?;
        let data = exts.vec16()?;
        if typ != 0 {
            continue;
        }
        let mut list = Reader(Reader(data).vec16()?);
        while !list.0.is_empty() {
            let kind = list.u8()?;
            let name = list.vec16()?;
            if kind == 0 {
                return std::str::from_utf8(name).ok().map(str::to_owned);
            }
        }
        return None;
    }
    None
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn u24(&mut self) -> Option<usize> {
        self.take(3)
            .map(|b| usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]))
    }
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()? as usize;
        self.take(n)
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()? as usize;
        self.take(n)
    }
}

#[cfg(test)]
mod tests {
    use super::client_hello_sni;

    #[test]
    fn garbage_and_truncation_give_none() {
        assert_eq!(client_hello_sni(b""), None);
        assert_eq!(client_hello_sni(b"GET / HTTP/1.1\r\n\r\n"), None);
        assert_eq!(client_hello_sni(&[22, 3, 1, 0, 200, 1, 0]), None);
        for len in 0..64 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 22) as u8).collect();
            let _ = client_hello_sni(&junk);
        }
    }
}
