//! One framed EXS API connection: a byte stream, a read buffer and the
//! framing rules. It reads whatever the stream gives, decodes whole frames
//! with the pure codec in [`super::frame`], and writes frames. Both ends use
//! it: the host's [`super::client::Client`] and the CSP simulator.
//!
//! It does not decide what a frame means, answer anything, reconnect or keep
//! time: a caller wraps a read in its own deadline. Reads keep their bytes in
//! the buffer, so a read cancelled by a deadline or a `select!` loses nothing.
//! After an invalid frame the buffer is left as it was: the caller decides
//! whether to skip it ([`Connection::skip`]) or end the connection.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::frame::{Frame, FrameError, Framing};

/// Why no frame could be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The peer closed the stream in the middle of a frame.
    #[error("connection closed after {pending} bytes of an incomplete frame")]
    ClosedMidFrame { pending: usize },
    /// The buffered bytes are not a frame; they are still in the buffer.
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Why a frame could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Encode(#[from] FrameError),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// A stream that carries EXS API frames.
#[derive(Debug)]
pub struct Connection<S> {
    stream: S,
    buffer: Vec<u8>,
    framing: Framing,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    pub fn new(stream: S, framing: Framing) -> Connection<S> {
        Connection { stream, buffer: Vec::with_capacity(1024), framing }
    }

    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Bytes read but not yet taken as a frame.
    pub fn buffered(&self) -> &[u8] {
        &self.buffer
    }

    /// Drops `len` buffered bytes (e.g. a whole frame with a bad checksum).
    pub fn skip(&mut self, len: usize) {
        self.buffer.drain(..len.min(self.buffer.len()));
    }

    /// The next whole frame already buffered: `Ok(None)` when more bytes are
    /// needed, `Err` when the buffered bytes are invalid (they stay buffered).
    pub fn parse_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        match self.framing.decode(&self.buffer)? {
            Some((frame, used)) => {
                self.buffer.drain(..used);
                Ok(Some(frame))
            }
            None => Ok(None),
        }
    }

    /// Reads once from the stream into the buffer. False when the peer closed.
    /// Cancel-safe.
    pub async fn read_more(&mut self) -> io::Result<bool> {
        let mut chunk = [0u8; 1024];
        let n = self.stream.read(&mut chunk).await?;
        self.buffer.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    /// The next frame, reading as needed. `Ok(None)` when the peer closed
    /// between frames. Cancel-safe: a partial frame stays buffered.
    pub async fn read_frame(&mut self) -> Result<Option<Frame>, ReadError> {
        loop {
            if let Some(frame) = self.parse_frame()? {
                return Ok(Some(frame));
            }
            if !self.read_more().await? {
                return match self.buffer.len() {
                    0 => Ok(None),
                    pending => Err(ReadError::ClosedMidFrame { pending }),
                };
            }
        }
    }

    /// Encodes `frame` with this connection's framing and sends it.
    pub async fn write_frame(&mut self, frame: &Frame) -> Result<(), WriteError> {
        let mut wire = Vec::with_capacity(frame.length() + 4);
        self.framing.encode(frame, &mut wire)?;
        Ok(self.write_bytes(&wire).await?)
    }

    /// Sends bytes already framed (a frame encoded under another rule, or one
    /// a simulator spoils on purpose).
    pub async fn write_bytes(&mut self, wire: &[u8]) -> io::Result<()> {
        self.stream.write_all(wire).await?;
        self.stream.flush().await
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::duplex;

    use super::*;

    fn wire(frame: &Frame) -> Vec<u8> {
        let mut out = Vec::new();
        Framing::default().encode(frame, &mut out).unwrap();
        out
    }

    #[tokio::test]
    async fn frames_split_at_every_offset_are_read_whole() {
        let frames = [Frame::new(0x3A, 1, 0xFF, vec![1, 1, 1, 0]), Frame::new(0xAB, 2, 0xFF, vec![])];
        let bytes: Vec<u8> = frames.iter().flat_map(wire).collect();
        for split in 0..=bytes.len() {
            let (a, mut b) = duplex(256);
            let mut connection = Connection::new(a, Framing::default());
            b.write_all(&bytes[..split]).await.unwrap();
            b.write_all(&bytes[split..]).await.unwrap();
            drop(b);
            assert_eq!(connection.read_frame().await.unwrap().as_ref(), Some(&frames[0]), "split {split}");
            assert_eq!(connection.read_frame().await.unwrap().as_ref(), Some(&frames[1]), "split {split}");
            assert!(connection.read_frame().await.unwrap().is_none());
        }
    }

    #[tokio::test]
    async fn closed_mid_frame_and_invalid_bytes_are_told_apart() {
        let (a, mut b) = duplex(256);
        let mut connection = Connection::new(a, Framing::default());
        b.write_all(&wire(&Frame::new(0x3A, 1, 0xFF, vec![1]))[..4]).await.unwrap();
        drop(b);
        assert!(matches!(connection.read_frame().await, Err(ReadError::ClosedMidFrame { pending: 4 })));

        let (a, mut b) = duplex(256);
        let mut connection = Connection::new(a, Framing::default());
        let mut bad = wire(&Frame::new(0x3A, 1, 0xFF, vec![1]));
        *bad.last_mut().unwrap() ^= 0xFF;
        let good = Frame::new(0x3A, 2, 0xFF, vec![2]);
        bad.extend(wire(&good));
        b.write_all(&bad).await.unwrap();
        let Err(ReadError::Frame(FrameError::BadChecksum { frame_len, .. })) = connection.read_frame().await else {
            panic!("bad checksum expected")
        };
        // The caller may skip the bad frame and read on.
        connection.skip(frame_len);
        assert_eq!(connection.read_frame().await.unwrap(), Some(good));
    }

    #[tokio::test]
    async fn written_frames_decode_on_the_other_end() {
        let (a, b) = duplex(256);
        let mut left = Connection::new(a, Framing::default());
        let mut right = Connection::new(b, Framing::default());
        let frame = Frame::new(0xB9, 7, 0xFF, vec![1, 0x1E]);
        left.write_frame(&frame).await.unwrap();
        assert_eq!(right.read_frame().await.unwrap(), Some(frame));
        assert!(right.buffered().is_empty());
    }
}
