//! `POST /reload` (re-read the config file now: 200 with the version now in force, 400 with
//! the error naming the field and line while the old config stays) and `GET /config_dump`
//! (the version in force and the reload counters), both answered by the control thread.

use std::io;
use std::net::TcpStream;

use super::{respond, AdminCtx, Request};
use crate::reload::Trigger;

pub fn reload(ctx: &AdminCtx, _: &Request, out: &mut TcpStream) -> io::Result<()> {
    let Some(control) = &ctx.control else {
        return respond(out, 503, "text/plain", b"reload is not available here\n");
    };
    match control.reload(Trigger::Admin) {
        Ok(v) => respond(out, 200, "text/plain", format!("version {v}\n").as_bytes()),
        Err(e) => respond(
            out,
            400,
            "text/plain",
            format!(
                "rejected, version {} stays in force: {e}\n",
                control.stats.version()
            )
            .as_bytes(),
        ),
    }
}

pub fn config_dump(ctx: &AdminCtx, _: &Request, out: &mut TcpStream) -> io::Result<()> {
    match ctx.control.as_ref().and_then(|c| c.dump()) {
        Some(body) => respond(out, 200, "application/json", body.as_bytes()),
        None => respond(
            out,
            503,
            "text/plain",
            b"the control thread did not answer\n",
        ),
    }
}
