//! Response bodies rendered while they are sent: the scrape and `GET /api/v1/metrics` write
//! ~256 KiB frames from a cursor over an immutable snapshot instead of building the whole body
//! first, so the first byte leaves in milliseconds and the memory a response needs is a frame
//! or two, not the size of the store's exposition. Gzip compresses the same frames as they
//! go. A body that fits in its first frame is sent whole, with a `Content-Length` (as before).

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Frame, SizeHint};
use std::convert::Infallible;
use std::io::Write;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The size a renderer fills a frame to before it is sent.
pub const FRAME: usize = 256 * 1024;

/// Compressed output is sent once this much of it has piled up.
const GZIP_FRAME: usize = 64 * 1024;

/// Something that writes a response body in pieces.
pub trait Render: Send + 'static {
    /// Appends the next part of the body to `out`, stopping once `out` holds at least
    /// [`FRAME`] bytes (it may overshoot by one item). Returns `true` when the body is
    /// complete (everything has been appended).
    fn fill(&mut self, out: &mut Vec<u8>) -> bool;
}

/// A streamed body: frames from a [`Render`], optionally gzip-compressed.
pub struct Streamed {
    render: Option<Box<dyn Render>>,
    buf: Vec<u8>,
    gzip: Option<flate2::write::GzEncoder<Vec<u8>>>,
    /// The first frame, rendered before the response head is sent.
    pending: Option<Bytes>,
}

impl Streamed {
    fn new(render: Box<dyn Render>, gzip: bool) -> Streamed {
        Streamed {
            render: Some(render),
            buf: Vec::with_capacity(FRAME + FRAME / 4),
            gzip: gzip.then(|| {
                flate2::write::GzEncoder::new(
                    Vec::with_capacity(GZIP_FRAME * 2),
                    flate2::Compression::new(1),
                )
            }),
            pending: None,
        }
    }

    fn finished(&self) -> bool {
        self.render.is_none() && self.gzip.is_none()
    }

    /// The next non-empty frame, or `None` at the end.
    fn next_frame(&mut self) -> Option<Bytes> {
        if let Some(p) = self.pending.take() {
            return Some(p);
        }
        loop {
            let Some(render) = self.render.as_mut() else {
                // Everything is rendered: the rest of the compressed stream and its trailer.
                let tail = self.gzip.take()?.finish().unwrap_or_default();
                return (!tail.is_empty()).then(|| Bytes::from(tail));
            };
            if render.fill(&mut self.buf) {
                self.render = None;
            }
            match &mut self.gzip {
                None => {
                    if self.buf.is_empty() || (self.render.is_some() && self.buf.len() < FRAME) {
                        continue;
                    }
                    let next = Vec::with_capacity(FRAME + FRAME / 4);
                    return Some(Bytes::from(std::mem::replace(&mut self.buf, next)));
                }
                Some(enc) => {
                    // Writing into a `Vec` cannot fail.
                    let _ = enc.write_all(&self.buf);
                    self.buf.clear();
                    if self.render.is_some() && enc.get_ref().len() >= GZIP_FRAME {
                        let next = Vec::with_capacity(GZIP_FRAME * 2);
                        return Some(Bytes::from(std::mem::replace(enc.get_mut(), next)));
                    }
                }
            }
        }
    }
}

/// A response body: whole (`Full`), or streamed.
pub struct RespBody(Kind);

enum Kind {
    Full(Full<Bytes>),
    Stream(Box<Streamed>),
}

impl RespBody {
    /// A body known in full.
    pub fn full(bytes: impl Into<Bytes>) -> RespBody {
        RespBody(Kind::Full(Full::new(bytes.into())))
    }

    /// A body rendered by `render` as it is sent (`gzip`: compressed). The first frame is
    /// rendered now: a body that fits in it is returned whole, with its length known.
    pub fn stream(render: impl Render, gzip: bool) -> RespBody {
        let mut s = Streamed::new(Box::new(render), gzip);
        let first = s.next_frame();
        if s.finished() {
            return RespBody::full(first.unwrap_or_default());
        }
        s.pending = first;
        RespBody(Kind::Stream(Box::new(s)))
    }

    /// Whether the body is sent in frames (no `Content-Length`).
    pub fn is_streamed(&self) -> bool {
        matches!(self.0, Kind::Stream(_))
    }
}

impl Default for RespBody {
    fn default() -> Self {
        RespBody::full(Bytes::new())
    }
}

impl Body for RespBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match &mut self.get_mut().0 {
            Kind::Full(f) => Pin::new(f).poll_frame(cx),
            Kind::Stream(s) => Poll::Ready(s.next_frame().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Kind::Full(f) => f.is_end_stream(),
            Kind::Stream(s) => s.pending.is_none() && s.finished(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Kind::Full(f) => f.size_hint(),
            Kind::Stream(_) => SizeHint::default(),
        }
    }
}

/// Renders a whole body by concatenating its frames (for callers that want it in memory:
/// tests, fuzz targets).
pub fn collect(mut render: impl Render) -> Vec<u8> {
    let mut out = Vec::new();
    let mut frame = Vec::new();
    loop {
        let done = render.fill(&mut frame);
        out.extend_from_slice(&frame);
        frame.clear();
        if done {
            return out;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `n` numbered lines, at most `per` per call.
    struct Lines {
        next: usize,
        n: usize,
        per: usize,
    }

    impl Render for Lines {
        fn fill(&mut self, out: &mut Vec<u8>) -> bool {
            let mut k = 0;
            while self.next < self.n && k < self.per && out.len() < FRAME {
                out.extend_from_slice(format!("line {}\n", self.next).as_bytes());
                self.next += 1;
                k += 1;
            }
            self.next == self.n
        }
    }

    fn frames(mut b: RespBody) -> (bool, Vec<Bytes>) {
        let streamed = b.is_streamed();
        let mut out = Vec::new();
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        while let Poll::Ready(Some(f)) = Pin::new(&mut b).poll_frame(&mut cx) {
            out.push(f.unwrap().into_data().unwrap());
        }
        (streamed, out)
    }

    fn expected(n: usize) -> Vec<u8> {
        (0..n)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect()
    }

    #[test]
    fn small_bodies_are_whole_large_ones_framed() {
        for (n, per) in [
            (0, 10),
            (3, 1),
            (1000, 7),
            (200_000, 1000),
            (200_000, usize::MAX),
        ] {
            let want = expected(n);
            let (streamed, fs) = frames(RespBody::stream(Lines { next: 0, n, per }, false));
            assert_eq!(streamed, want.len() >= FRAME, "n={n}");
            assert!(fs.iter().all(|f| !f.is_empty()));
            if streamed {
                assert!(fs.len() > 1);
            }
            assert_eq!(fs.concat(), want, "n={n} per={per}");

            let (_, gz) = frames(RespBody::stream(Lines { next: 0, n, per }, true));
            let gz = gz.concat();
            let mut d = flate2::read::GzDecoder::new(&gz[..]);
            let mut plain = Vec::new();
            std::io::Read::read_to_end(&mut d, &mut plain).unwrap();
            assert_eq!(plain, want, "gzip n={n} per={per}");
        }
    }
}
