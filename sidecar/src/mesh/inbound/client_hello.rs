//! Just enough of a TLS ClientHello to read the ALPN protocols it offers,
//! from bytes peeked off a socket. Bounded and total: any input, cut
//! anywhere or garbage, yields [`Parsed::Incomplete`] or
//! [`Parsed::NotClientHello`], never a panic.
//!
//! The handshake message may span several TLS records (a large hello, or a
//! client that fragments it); the records' payloads are joined first.

/// What the peeked bytes are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A whole ClientHello, with the ALPN protocols it offers (empty when
    /// it has no ALPN extension).
    ClientHello {
        /// The protocol names, in the client's order.
        alpn: Vec<Vec<u8>>,
    },
    /// A prefix of what may be a ClientHello: more bytes are needed.
    Incomplete,
    /// Not a TLS ClientHello (plaintext, another TLS message, or
    /// malformed).
    NotClientHello,
}

/// A record or field that does not parse.
#[derive(Debug)]
enum Error {
    /// The bytes stop before the field ends.
    Short,
    /// The bytes cannot be a ClientHello.
    Invalid,
}

/// A cursor over a byte slice, every read checked.
struct Reader<'a> {
    bytes: &'a [u8],
}

const RECORD_HANDSHAKE: u8 = 0x16;
const HANDSHAKE_CLIENT_HELLO: u8 = 0x01;
const EXTENSION_ALPN: u16 = 16;
/// The largest ClientHello accepted; a longer one is not a mesh client's.
pub const MAX_HELLO: usize = 16 * 1024;
/// The largest record payload TLS allows (2^14 plus expansion room).
const MAX_RECORD: usize = (1 << 14) + 2048;

// === impl Reader ===

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if self.bytes.len() < n {
            return Err(Error::Short);
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, Error> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u24(&mut self) -> Result<usize, Error> {
        let b = self.take(3)?;
        Ok(usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]))
    }

    /// A field prefixed by its one-byte length.
    fn vec8(&mut self) -> Result<Reader<'a>, Error> {
        let n = self.u8()?;
        self.take(usize::from(n)).map(Reader::new)
    }

    /// A field prefixed by its two-byte length.
    fn vec16(&mut self) -> Result<Reader<'a>, Error> {
        let n = self.u16()?;
        self.take(usize::from(n)).map(Reader::new)
    }

    fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// Parses the ClientHello at the start of `bytes`.
pub fn parse(bytes: &[u8]) -> Parsed {
    let mut message = Vec::new();
    match handshake_message(bytes, &mut message) {
        Ok(()) => {}
        Err(Error::Short) => return Parsed::Incomplete,
        Err(Error::Invalid) => return Parsed::NotClientHello,
    }
    // Once the whole message is here, a short field is a malformed hello.
    match client_hello_alpn(&message) {
        Ok(alpn) => Parsed::ClientHello { alpn },
        Err(_) => Parsed::NotClientHello,
    }
}

/// Joins the payloads of the handshake records at the start of `bytes`
/// into `message` until it holds the first handshake message, which must
/// be a ClientHello.
fn handshake_message(bytes: &[u8], message: &mut Vec<u8>) -> Result<(), Error> {
    let mut records = Reader::new(bytes);
    loop {
        if let Some(len) = message_len(message)?
            && message.len() >= len
        {
            message.truncate(len);
            return Ok(());
        }
        if records.is_empty() {
            return Err(Error::Short);
        }
        let content_type = records.u8()?;
        if content_type != RECORD_HANDSHAKE {
            return Err(Error::Invalid);
        }
        let [major, minor] = records.take(2)?.try_into().map_err(|_| Error::Invalid)?;
        // Record versions are 3.x (SSL 3.0 up to the TLS 1.2 that 1.3 uses).
        if major != 3 || minor > 4 {
            return Err(Error::Invalid);
        }
        let len = usize::from(records.u16()?);
        if len == 0 || len > MAX_RECORD {
            return Err(Error::Invalid);
        }
        match records.take(len) {
            Ok(payload) => message.extend_from_slice(payload),
            Err(_) => {
                // Check the part that arrived, to refuse a bad type early.
                message.extend_from_slice(records.bytes);
                message_len(message)?;
                return Err(Error::Short);
            }
        }
    }
}

/// The length of the handshake message being assembled (header included),
/// once its header is here.
fn message_len(message: &[u8]) -> Result<Option<usize>, Error> {
    let Some(&kind) = message.first() else {
        return Ok(None);
    };
    if kind != HANDSHAKE_CLIENT_HELLO {
        return Err(Error::Invalid);
    }
    let mut header = Reader::new(&message[1..]);
    match header.u24() {
        Ok(len) if len > MAX_HELLO => Err(Error::Invalid),
        Ok(len) => Ok(Some(len + 4)),
        Err(_) => Ok(None),
    }
}

/// The ALPN protocols of a whole ClientHello message (header included).
fn client_hello_alpn(message: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
    let mut hello = Reader::new(message);
    hello.take(4)?; // type and length, checked while assembling
    hello.take(2 + 32)?; // legacy_version, random
    let session_id = hello.vec8()?;
    if session_id.bytes.len() > 32 {
        return Err(Error::Invalid);
    }
    let suites = hello.vec16()?;
    if suites.bytes.is_empty() || suites.bytes.len() % 2 != 0 {
        return Err(Error::Invalid);
    }
    if hello.vec8()?.is_empty() {
        return Err(Error::Invalid); // no compression method
    }
    if hello.is_empty() {
        return Ok(Vec::new()); // an old hello without extensions
    }
    let mut extensions = hello.vec16()?;
    if !hello.is_empty() {
        return Err(Error::Invalid);
    }
    let mut alpn = None;
    while !extensions.is_empty() {
        let kind = extensions.u16()?;
        let mut data = extensions.vec16()?;
        if kind != EXTENSION_ALPN {
            continue;
        }
        if alpn.is_some() {
            return Err(Error::Invalid); // a repeated extension
        }
        let mut names = data.vec16()?;
        if !data.is_empty() || names.is_empty() {
            return Err(Error::Invalid);
        }
        let mut list = Vec::new();
        while !names.is_empty() {
            let name = names.vec8()?;
            if name.is_empty() {
                return Err(Error::Invalid);
            }
            list.push(name.bytes.to_vec());
        }
        alpn = Some(list);
    }
    Ok(alpn.unwrap_or_default())
}

#[cfg(test)]
pub(crate) mod tests;
