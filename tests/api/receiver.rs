//! A webhook receiver run by the test: a real HTTP server on port 0 that records what it
//! is sent and answers as its plan says.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use warp::Filter;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    /// Lowercase names.
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Received {
    pub fn id(&self) -> &str {
        &self.headers["webhook-id"]
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("a JSON body")
    }
}

/// How the receiver answers a request.
#[derive(Debug, Clone)]
pub enum Reply {
    Status(u16),
    /// 302 to this path on the receiver.
    Redirect(&'static str),
    /// 200 with this many bytes of body.
    Big(usize),
    /// No answer for a minute.
    Hang,
}

#[derive(Default)]
struct Book {
    got: Vec<Received>,
    /// Answers for the next requests, in order; then `otherwise`.
    plan: VecDeque<Reply>,
    otherwise: Option<Reply>,
}

pub struct Receiver {
    pub addr: std::net::SocketAddr,
    book: Arc<Mutex<Book>>,
    heard: Arc<tokio::sync::Notify>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Receiver {
    /// A receiver that answers 200 unless planned otherwise.
    pub async fn start() -> Receiver {
        Receiver::start_on(0).await
    }

    /// [`Receiver::start`], on `port`.
    pub async fn start_on(port: u16) -> Receiver {
        let book = Arc::new(Mutex::new(Book::default()));
        let heard = Arc::new(tokio::sync::Notify::new());
        let (b, h) = (book.clone(), heard.clone());
        let route = warp::path::full()
            .and(warp::header::headers_cloned())
            .and(warp::body::bytes())
            .then(
                move |path: warp::path::FullPath,
                      headers: warp::http::HeaderMap,
                      body: bytes::Bytes| {
                    let (b, h) = (b.clone(), h.clone());
                    async move {
                        let received = Received {
                            path: path.as_str().to_owned(),
                            headers: headers
                                .iter()
                                .map(|(k, v)| {
                                    (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned())
                                })
                                .collect(),
                            body: String::from_utf8_lossy(&body).into_owned(),
                        };
                        let reply = {
                            let mut book = b.lock().unwrap();
                            book.got.push(received);
                            book.plan
                                .pop_front()
                                .or_else(|| book.otherwise.clone())
                                .unwrap_or(Reply::Status(200))
                        };
                        h.notify_waiters();
                        if matches!(reply, Reply::Hang) {
                            tokio::time::sleep(Duration::from_secs(60)).await;
                        }
                        let mut response = warp::http::Response::builder();
                        let body = match reply {
                            Reply::Hang => Vec::new(),
                            Reply::Status(status) => {
                                response = response.status(status);
                                Vec::new()
                            }
                            Reply::Redirect(to) => {
                                response = response.status(302).header("location", to);
                                Vec::new()
                            }
                            Reply::Big(bytes) => vec![b'x'; bytes],
                        };
                        response.body(body).unwrap()
                    }
                },
            );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("the receiver binds");
        let addr = listener.local_addr().unwrap();
        let serving = warp::serve(route)
            .incoming(listener)
            .graceful(async {
                let _ = stopped.await;
            })
            .run();
        tokio::spawn(serving);
        Receiver {
            addr,
            book,
            heard,
            _stop: stop,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answers the next requests so, in order.
    pub fn plan(&self, replies: &[Reply]) {
        self.book
            .lock()
            .unwrap()
            .plan
            .extend(replies.iter().cloned());
    }

    /// Answers every request so, once the plan is done.
    pub fn otherwise(&self, reply: Reply) {
        self.book.lock().unwrap().otherwise = Some(reply);
    }

    /// What it got so far.
    pub fn got(&self) -> Vec<Received> {
        self.book.lock().unwrap().got.clone()
    }

    /// What it got, once it got at least `n` requests matching `which` (30 s at most).
    pub async fn wait_for(&self, n: usize, which: impl Fn(&Received) -> bool) -> Vec<Received> {
        let waited = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let heard = self.heard.notified();
                let got: Vec<Received> = self.got().into_iter().filter(|r| which(r)).collect();
                if got.len() >= n {
                    return got;
                }
                // A notification between the look and the wait is not lost: a short nap
                // looks again.
                tokio::select! {
                    () = heard => {}
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        })
        .await;
        waited.unwrap_or_else(|_| {
            panic!(
                "the receiver got {} of {n} requests in 30 s: {:#?}",
                self.got().iter().filter(|r| which(r)).count(),
                self.got()
            )
        })
    }
}

/// Any request.
pub fn any(_: &Received) -> bool {
    true
}

/// Requests of this `type`.
pub fn of_type(kind: &'static str) -> impl Fn(&Received) -> bool {
    move |r| {
        serde_json::from_str::<serde_json::Value>(&r.body).is_ok_and(|body| body["type"] == kind)
    }
}
