//! Request/response between shard actors over glommio's channel mesh (a full mesh of bounded
//! single-producer single-consumer queues that wake the peer executor).
//!
//! A request carries an id; the reply comes back over the mesh to the caller's shard, which
//! completes the waiting future. (Waking a glommio task from a foreign thread is not supported,
//! so replies never cross threads as wakers: they travel as messages.)

use futures_channel::oneshot;
use glommio::channels::channel_mesh::{Receivers, Senders};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

/// Bound of each mesh queue; a full queue makes the sender wait.
pub const MESH_QUEUE_MESSAGES_MAX: usize = 1024;

pub enum Envelope<Req, Resp> {
    Request { id: u64, body: Req },
    Response { id: u64, body: Resp },
}

pub type MeshSenders<Req, Resp> = Senders<Envelope<Req, Resp>>;
pub type MeshReceivers<Req, Resp> = Receivers<Envelope<Req, Resp>>;
pub type Handler<Req, Resp> = Rc<dyn Fn(usize, Req) -> Pin<Box<dyn Future<Output = Resp>>>>;

#[derive(Debug, thiserror::Error)]
#[error("shard {0} is gone (shutting down)")]
pub struct PeerGone(pub usize);

pub struct Mesh<Req: Send + 'static, Resp: Send + 'static> {
    me: usize,
    senders: MeshSenders<Req, Resp>,
    pending: RefCell<HashMap<u64, oneshot::Sender<Resp>>>,
    next_id: Cell<u64>,
}

impl<Req: Send + 'static, Resp: Send + 'static> Mesh<Req, Resp> {
    pub fn new(senders: MeshSenders<Req, Resp>) -> Rc<Self> {
        let me = senders.peer_id();
        Rc::new(Mesh {
            me,
            senders,
            pending: RefCell::new(HashMap::new()),
            next_id: Cell::new(1),
        })
    }

    pub fn me(&self) -> usize {
        self.me
    }

    pub fn shard_count(&self) -> usize {
        self.senders.nr_consumers()
    }

    /// Sends `req` to `shard` and waits for its response.
    pub async fn call(&self, shard: usize, req: Req) -> Result<Resp, PeerGone> {
        assert_ne!(shard, self.me, "a shard never calls itself over the mesh");
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let (tx, rx) = oneshot::channel();
        self.pending.borrow_mut().insert(id, tx);
        if self
            .senders
            .send_to(shard, Envelope::Request { id, body: req })
            .await
            .is_err()
        {
            self.pending.borrow_mut().remove(&id);
            return Err(PeerGone(shard));
        }
        rx.await.map_err(|_| PeerGone(shard))
    }

    /// Serves requests from every peer with `handler` (one task per request, so a request that
    /// waits — for a WAL sync, say — does not hold up the next) and routes responses to callers.
    pub fn serve(
        self: &Rc<Self>,
        mut receivers: MeshReceivers<Req, Resp>,
        handler: Handler<Req, Resp>,
    ) {
        for (peer, stream) in receivers.streams() {
            let mesh = self.clone();
            let handler = handler.clone();
            glommio::spawn_local(async move {
                while let Some(envelope) = stream.recv().await {
                    match envelope {
                        Envelope::Request { id, body } => {
                            let response = handler(peer, body);
                            let mesh = mesh.clone();
                            glommio::spawn_local(async move {
                                let body = response.await;
                                // A peer that is shutting down no longer listens; nothing to do.
                                let _ = mesh
                                    .senders
                                    .send_to(peer, Envelope::Response { id, body })
                                    .await;
                            })
                            .detach();
                        }
                        Envelope::Response { id, body } => {
                            if let Some(tx) = mesh.pending.borrow_mut().remove(&id) {
                                let _ = tx.send(body);
                            }
                        }
                    }
                }
            })
            .detach();
        }
    }

    /// Closes our side of every queue (at shutdown).
    pub fn close(&self) {
        self.senders.close();
    }
}
