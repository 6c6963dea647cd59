//! Small misbehaving servers on 127.0.0.1:0, one thread per connection.
//!
//! [`FakeServer::wait_request`] and [`FakeServer::wait_completion`] let a
//! test act the moment a request arrives (no sleeps).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How `/v1/completions` answers.
#[derive(Debug, Clone, Copy)]
pub enum Completion {
    /// A valid stream: 4 tokens with ids, usage, `[DONE]`.
    Valid,
    /// This HTTP status with a JSON error.
    Status(u16),
    /// 401 whose body echoes the request's Authorization header.
    EchoAuth,
    /// 500 with a 20 MB body.
    HugeBody,
    /// The connection is closed without an answer.
    Reset,
    /// The request is read and never answered.
    NoHeaders,
    /// 200 event stream of garbage.
    GarbageSse,
    /// 200 event stream of keep-alive comments, forever.
    EndlessComments,
    /// 200 with an HTML page.
    Html,
    /// 200 with an empty body.
    Empty,
    /// A stream cut in the middle of an event.
    CutMidEvent,
    /// A stream whose event is an error object.
    ErrorEvent,
    /// A valid first token, then garbage (fails after a first token).
    FirstTokenThenGarbage,
    /// A valid stream of this many tokens, whatever `max_tokens` asked.
    Tokens(u32),
    /// The request is read and held until [`FakeServer::open_gate`], then
    /// answered as [`Completion::Valid`].
    Gated,
}

/// What the server does.
#[derive(Debug, Clone, Copy)]
pub enum Fake {
    /// Health and model list fine (model `m`); completions as given.
    Healthy(Completion),
    /// `/health` answers this status.
    HealthStatus(u16),
    /// `/health` answers 503 echoing the Authorization header.
    HealthEchoAuth,
    /// `/health` closes the connection.
    HealthReset,
    /// `/health` is read and never answered.
    HealthHang,
    /// `/v1/models` answers garbage.
    ModelsGarbage,
    /// `/v1/models` lists nothing.
    ModelsEmpty,
    /// Accepts connections and never says anything (a silent database).
    Silent,
    /// A PostgreSQL server that completes the start-up (AuthenticationOk,
    /// ParameterStatus, BackendKeyData, ReadyForQuery) and then never
    /// answers a query.
    PgReadyThenSilent,
    /// Healthy with valid completions, but `/metrics` is read and never
    /// answered.
    MetricsHang,
}

/// A running fake; it lives as long as the test process.
pub struct FakeServer {
    addr: std::net::SocketAddr,
    requests: Mutex<Receiver<String>>,
    gate: Arc<Gate>,
}

/// Holds [`Completion::Gated`] answers until opened.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: std::sync::Condvar,
}

impl Gate {
    fn wait(&self) {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
    }
}

impl FakeServer {
    pub fn start(fake: Fake) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = channel();
        let tx = Arc::new(Mutex::new(tx));
        let gate = Arc::new(Gate::default());
        let served_gate = Arc::clone(&gate);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let tx = Arc::clone(&tx);
                let gate = Arc::clone(&served_gate);
                std::thread::spawn(move || serve(stream, fake, &tx, &gate));
            }
        });
        FakeServer {
            addr,
            requests: Mutex::new(rx),
            gate,
        }
    }

    /// Lets every held [`Completion::Gated`] request (and later ones) be
    /// answered.
    pub fn open_gate(&self) {
        *self.gate.open.lock().unwrap() = true;
        self.gate.opened.notify_all();
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn host_port(&self) -> String {
        self.addr.to_string()
    }

    /// Blocks until a request (or, for [`Fake::Silent`], a connection)
    /// arrives; returns its path.
    pub fn wait_request(&self) -> String {
        // A child that ended early never sends: fail instead of waiting.
        self.requests
            .lock()
            .unwrap()
            .recv_timeout(Duration::from_secs(60))
            .expect("the harness never sent the request this test waits for")
    }

    /// Blocks until a completion request arrives.
    pub fn wait_completion(&self) {
        while !self.wait_request().contains("completions") {}
    }
}

fn notify(tx: &Mutex<Sender<String>>, path: &str) {
    let _ = tx.lock().unwrap().send(path.to_owned());
}

/// Reads one request: its path and Authorization header.
fn read_request(reader: &mut BufReader<TcpStream>) -> Option<(String, String)> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let path = line.split_whitespace().nth(1)?.to_owned();
    let mut auth = String::new();
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        match name.to_ascii_lowercase().as_str() {
            "authorization" => value.trim().clone_into(&mut auth),
            "content-length" => length = value.trim().parse().ok()?,
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((path, auth))
}

fn respond(stream: &mut TcpStream, status: u16, content_type: &str, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
}

fn stream_head(stream: &mut TcpStream) {
    let _ = stream.write_all(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n",
    );
}

fn serve(stream: TcpStream, fake: Fake, tx: &Mutex<Sender<String>>, gate: &Gate) {
    if let Fake::Silent = fake {
        notify(tx, "connection");
        // Holds the connection open, saying nothing.
        let mut s = stream;
        let mut sink = [0u8; 1024];
        while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
        return;
    }
    if let Fake::PgReadyThenSilent = fake {
        notify(tx, "connection");
        pg_ready_then_silent(stream);
        return;
    }
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    while let Some((path, auth)) = read_request(&mut reader) {
        notify(tx, &path);
        let json = "application/json";
        match (path.as_str(), fake) {
            ("/health", Fake::HealthStatus(code)) => respond(&mut writer, code, json, b"{}"),
            ("/health", Fake::HealthEchoAuth) => {
                let body = format!("{{\"error\":\"bad credentials: {auth}\"}}");
                respond(&mut writer, 503, json, body.as_bytes());
            }
            ("/health", Fake::HealthReset) => return,
            ("/health", Fake::HealthHang) => hang(),
            ("/health", _) => respond(&mut writer, 200, json, b"{}"),
            ("/metrics", Fake::MetricsHang) => hang(),
            ("/v1/models", Fake::ModelsGarbage) => respond(&mut writer, 200, json, b"<<garbage>>"),
            ("/v1/models", Fake::ModelsEmpty) => {
                respond(&mut writer, 200, json, br#"{"object":"list","data":[]}"#);
            }
            ("/v1/models", _) => respond(
                &mut writer,
                200,
                json,
                br#"{"object":"list","data":[{"id":"m","object":"model"}]}"#,
            ),
            (_, Fake::Healthy(Completion::Gated)) => {
                gate.wait();
                if !complete(&mut writer, Completion::Valid, &auth) {
                    return;
                }
            }
            (_, Fake::Healthy(completion)) => {
                if !complete(&mut writer, completion, &auth) {
                    return;
                }
            }
            (_, Fake::MetricsHang) => {
                if !complete(&mut writer, Completion::Valid, &auth) {
                    return;
                }
            }
            _ => respond(&mut writer, 404, json, b"{}"),
        }
    }
}

/// Answers one completion request; false when the connection is done.
fn complete(w: &mut TcpStream, completion: Completion, auth: &str) -> bool {
    let json = "application/json";
    match completion {
        Completion::Valid | Completion::Gated => {
            stream_head(w);
            for id in [11, 12, 13, 14] {
                let event = format!(
                    "data: {{\"choices\":[{{\"index\":0,\"text\":\"t\",\"token_ids\":[{id}],\"finish_reason\":null}}]}}\n\n"
                );
                let _ = w.write_all(event.as_bytes());
            }
            let _ = w.write_all(
                b"data: {\"choices\":[{\"index\":0,\"text\":\"\",\"finish_reason\":\"length\"}]}\n\n\
                  data: {\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":4}}\n\n\
                  data: [DONE]\n\n",
            );
            false
        }
        Completion::Status(code) => {
            respond(w, code, json, br#"{"error":{"message":"no","code":1}}"#);
            true
        }
        Completion::EchoAuth => {
            let body = format!("{{\"error\":{{\"message\":\"rejected Authorization: {auth}\"}}}}");
            respond(w, 401, json, body.as_bytes());
            true
        }
        Completion::HugeBody => {
            respond(w, 500, "text/plain", &vec![b'x'; 20 << 20]);
            false
        }
        Completion::Reset => false,
        Completion::NoHeaders => hang(),
        Completion::GarbageSse => {
            stream_head(w);
            let _ = w.write_all(b"data: {not json at all\n\ndata: \x00\x01\x02\n\n");
            false
        }
        Completion::EndlessComments => {
            stream_head(w);
            while w.write_all(b": keep-alive\n\n").is_ok() {
                std::thread::sleep(Duration::from_millis(100));
            }
            false
        }
        Completion::Html => {
            respond(
                w,
                200,
                "text/html",
                b"<html><body>Welcome to nginx</body></html>",
            );
            true
        }
        Completion::Empty => {
            respond(w, 200, json, b"");
            true
        }
        Completion::CutMidEvent => {
            stream_head(w);
            let _ = w.write_all(b"data: {\"choices\":[{\"index\":0,\"te");
            false
        }
        Completion::FirstTokenThenGarbage => {
            stream_head(w);
            let _ = w.write_all(
                b"data: {\"choices\":[{\"index\":0,\"text\":\"t\",\"token_ids\":[11],\"finish_reason\":null}]}\n\n\
                  data: {not json at all\n\n",
            );
            false
        }
        Completion::Tokens(n) => {
            stream_head(w);
            for id in 0..n {
                let event = format!(
                    "data: {{\"choices\":[{{\"index\":0,\"text\":\"t\",\"token_ids\":[{}],\"finish_reason\":null}}]}}\n\n",
                    10 + id
                );
                let _ = w.write_all(event.as_bytes());
            }
            let usage = format!(
                "data: {{\"choices\":[{{\"index\":0,\"text\":\"\",\"finish_reason\":\"length\"}}]}}\n\n\
                 data: {{\"choices\":[],\"usage\":{{\"prompt_tokens\":4,\"completion_tokens\":{n}}}}}\n\n\
                 data: [DONE]\n\n"
            );
            let _ = w.write_all(usage.as_bytes());
            false
        }
        Completion::ErrorEvent => {
            stream_head(w);
            let _ = w.write_all(b"data: {\"error\":{\"message\":\"engine died\"}}\n\n");
            false
        }
    }
}

/// Answers a PostgreSQL start-up (declining TLS), then reads whatever
/// comes and never answers.
fn pg_ready_then_silent(mut s: TcpStream) {
    let mut len = [0u8; 4];
    loop {
        if s.read_exact(&mut len).is_err() {
            return;
        }
        let mut body = vec![0; (u32::from_be_bytes(len) as usize).saturating_sub(4)];
        if s.read_exact(&mut body).is_err() {
            return;
        }
        let code = body
            .get(..4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
        if matches!(code, Some(80_877_103 | 80_877_104)) {
            // SSLRequest / GSSENCRequest: not here.
            let _ = s.write_all(b"N");
            continue;
        }
        break;
    }
    let mut reply = Vec::new();
    let mut message = |tag: u8, payload: &[u8]| {
        reply.push(tag);
        reply.extend_from_slice(&(payload.len() as u32 + 4).to_be_bytes());
        reply.extend_from_slice(payload);
    };
    message(b'R', &0u32.to_be_bytes());
    message(b'S', b"server_version\x0016.0\x00");
    message(b'S', b"client_encoding\x00UTF8\x00");
    message(b'K', &[0, 0, 0, 42, 0, 0, 0, 7]);
    message(b'Z', b"I");
    let _ = s.write_all(&reply);
    let mut sink = [0u8; 1024];
    while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
}

/// Never answers (the thread ends with the test process).
fn hang() -> ! {
    loop {
        std::thread::park();
    }
}
