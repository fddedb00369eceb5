//! The request as the route matcher sees it: borrowed spans, no copies.

use super::head::RequestHead;
use crate::route::RequestView;

pub struct View<'a> {
    pub buf: &'a [u8],
    pub head: &'a RequestHead,
}

impl RequestView for View<'_> {
    fn host(&self) -> &[u8] {
        self.head.host.map_or(&[][..], |h| h.get(self.buf))
    }
    fn method(&self) -> &[u8] {
        self.head.method.get(self.buf)
    }
    /// CONNECT's authority-form target (`host:port`) has no path; it routes as `/`.
    fn path(&self) -> &[u8] {
        if self.head.is_connect(self.buf) {
            b"/"
        } else {
            self.head.target.get(self.buf)
        }
    }
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.head.header(self.buf, name)
    }
}
