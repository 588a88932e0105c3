//! A small SMTP server that accepts every message and hands it to the test: enough of RFC 5321
//! (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) for lettre without TLS. It can be slow to
//! accept a message, as a loaded mail server is; a message counts as received once accepted.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// A message as the sink received it.
#[derive(Debug, Clone)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    /// Headers and body, dot-unstuffed.
    pub data: String,
}

/// A running sink; stops when dropped.
pub struct Sink {
    pub addr: SocketAddr,
    rx: mpsc::UnboundedReceiver<Mail>,
    task: JoinHandle<()>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Sink {
    /// Starts a sink on `addr` (port 0 for any).
    pub async fn start(addr: &str) -> Sink {
        Sink::start_slow(addr, Duration::ZERO).await
    }

    /// A sink that waits `accept_delay` before accepting each message (answering its end).
    pub async fn start_slow(addr: &str, accept_delay: Duration) -> Sink {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(session(stream, tx.clone(), accept_delay));
            }
        });
        Sink { addr, rx, task }
    }

    /// The next message, waiting up to `secs`.
    pub async fn next(&mut self, secs: u64) -> Mail {
        tokio::time::timeout(Duration::from_secs(secs), self.rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no e-mail arrived within {secs} s"))
            .unwrap()
    }

    /// A message already received, if any.
    pub fn try_next(&mut self) -> Option<Mail> {
        self.rx.try_recv().ok()
    }
}

/// A server that accepts connections and never answers: a send to it hangs until its timeout.
pub async fn start_silent() -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    (addr, task)
}

async fn session(stream: TcpStream, tx: mpsc::UnboundedSender<Mail>, accept_delay: Duration) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let reply = async |w: &mut tokio::net::tcp::OwnedWriteHalf, s: &str| {
        w.write_all(s.as_bytes()).await.is_ok()
    };
    if !reply(&mut write, "220 sink ESMTP ready\r\n").await {
        return;
    }
    let (mut from, mut to) = (String::new(), Vec::new());
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let command = line.trim_end().to_owned();
        let verb = command
            .split([' ', ':'])
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let answer = match verb.as_str() {
            "EHLO" | "HELO" => "250 sink\r\n".to_owned(),
            "MAIL" => {
                from = command[10..].trim().to_owned();
                to.clear();
                "250 OK\r\n".to_owned()
            }
            "RCPT" => {
                to.push(command[8..].trim().to_owned());
                "250 OK\r\n".to_owned()
            }
            "DATA" => {
                if !reply(&mut write, "354 end with <CRLF>.<CRLF>\r\n").await {
                    return;
                }
                let mut data = String::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    if line == ".\r\n" {
                        break;
                    }
                    data.push_str(line.strip_prefix('.').unwrap_or(&line));
                }
                tokio::time::sleep(accept_delay).await;
                if !reply(&mut write, "250 OK queued\r\n").await {
                    return;
                }
                let _ = tx.send(Mail {
                    from: from.clone(),
                    to: to.clone(),
                    data,
                });
                continue;
            }
            "RSET" | "NOOP" => "250 OK\r\n".to_owned(),
            "QUIT" => {
                let _ = reply(&mut write, "221 bye\r\n").await;
                return;
            }
            _ => "502 command not implemented\r\n".to_owned(),
        };
        if !reply(&mut write, &answer).await {
            return;
        }
    }
}
