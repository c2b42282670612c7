//! The chat screen's outbox keeper: one thread that owns the screen's outbox files, so that
//! no file IO runs on the UI task or on the async runtime's workers.
//!
//! Data flows one way. Enter → `App::update` → `Cmd::Send` → the runner hands it to the
//! keeper ([`Keeper::add`], which never waits) → the keeper appends an `add` record and
//! syncs it → it tells the app the message is queued (`NetEvent::Queued`: only now is it
//! shown as queued, since only now is it on disk) → it hands the `Cmd::Send` on to the
//! network task, which sends it. The network task in turn asks the keeper to read an
//! identity's outbox ([`Keeper::load`]), to look for what another process added
//! ([`Keeper::refresh`]) and to record what the server answered for ([`Keeper::done`]).
//!
//! Requests are taken in order, in batches: the `add`s that arrived while the disk was busy
//! go out in one append and one sync (a group commit), so a slow disk costs a burst one
//! sync, not one per message. The keeper keeps no list of its own: the network task's queue
//! is the one in memory, the file the one on disk, and the keeper only knows where each file
//! stood when last read ([`Watch`]) and how much of it is dead (for compaction).
//!
//! The thread ends once every [`Keeper`] handle is dropped and the requests before that
//! are carried out; [`KeeperThread::join`] waits for it, so a quit never loses a message
//! typed just before it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use natter_shared::{ClientId, Username};
use tokio::sync::{mpsc, oneshot};

use super::{COMPACT_MIN_DEAD, Outbox, Outgoing, Record, Watch};
use crate::msg::{Cmd, NetEvent};

/// Most requests carried out in one batch.
const MAX_BATCH: usize = 256;

/// A handle on the keeper; cheap to clone. Every method returns at once or awaits only the
/// keeper's answer, never the disk on the caller's thread.
#[derive(Debug, Clone)]
pub struct Keeper {
    requests: mpsc::UnboundedSender<Request>,
}

/// The keeper's thread, to wait for at the end.
#[derive(Debug)]
pub struct KeeperThread(std::thread::JoinHandle<()>);

#[derive(Debug)]
enum Request {
    Write(Write),
    Load {
        user: Username,
        reply: oneshot::Sender<anyhow::Result<Vec<Outgoing>>>,
    },
    Refresh {
        user: Username,
        reply: oneshot::Sender<Option<Vec<Outgoing>>>,
    },
}

/// A record to append.
#[derive(Debug)]
enum Write {
    Add {
        sender: Username,
        outgoing: Outgoing,
    },
    Done {
        user: Username,
        client_id: ClientId,
    },
}

impl Write {
    /// Whose outbox it goes to.
    fn user(&self) -> &Username {
        match self {
            Write::Add { sender, .. } => sender,
            Write::Done { user, .. } => user,
        }
    }
}

impl Keeper {
    /// Starts the keeper of the outboxes in `dir`. It tells the app what is queued on `app`
    /// and hands each send on to the network task on `net`.
    pub fn spawn(
        dir: PathBuf,
        app: mpsc::Sender<NetEvent>,
        net: mpsc::UnboundedSender<Cmd>,
    ) -> std::io::Result<(Keeper, KeeperThread)> {
        let (requests, rx) = mpsc::unbounded_channel();
        let state = State {
            dir,
            app,
            net,
            files: HashMap::new(),
        };
        let thread = std::thread::Builder::new()
            .name("natter-outbox".into())
            .spawn(move || state.run(rx))?;
        Ok((Keeper { requests }, KeeperThread(thread)))
    }

    /// Queues `outgoing` in `sender`'s outbox: on disk, then shown queued, then sent.
    pub fn add(&self, sender: Username, outgoing: Outgoing) {
        // The keeper ends only after every handle is gone, so this cannot fail while `self`
        // exists.
        let _ = self
            .requests
            .send(Request::Write(Write::Add { sender, outgoing }));
    }

    /// Records that the server answered for `client_id` (stored or refused it).
    pub fn done(&self, user: &Username, client_id: ClientId) {
        let _ = self.requests.send(Request::Write(Write::Done {
            user: user.clone(),
            client_id,
        }));
    }

    /// `user`'s waiting messages, oldest first (compacting the file when due).
    pub async fn load(&self, user: &Username) -> anyhow::Result<Vec<Outgoing>> {
        let (reply, answer) = oneshot::channel();
        let _ = self.requests.send(Request::Load {
            user: user.clone(),
            reply,
        });
        answer
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the outbox keeper has stopped")))
    }

    /// `user`'s waiting messages as the file holds them now, if someone wrote to it since it
    /// was last read; `None` when nobody did, or while a `natter send` holds the sending
    /// lock (it is delivering them; the next look, once it is done, takes what it left).
    pub async fn refresh(&self, user: &Username) -> Option<Vec<Outgoing>> {
        let (reply, answer) = oneshot::channel();
        let _ = self.requests.send(Request::Refresh {
            user: user.clone(),
            reply,
        });
        answer.await.ok().flatten()
    }
}

impl KeeperThread {
    /// Waits, up to `patience`, for the keeper to carry out what it was asked and end (which
    /// it does once every [`Keeper`] handle is dropped). Returns whether it ended.
    pub async fn join(self, patience: Duration) -> bool {
        let joined = tokio::task::spawn_blocking(move || self.0.join());
        matches!(tokio::time::timeout(patience, joined).await, Ok(Ok(Ok(()))))
    }
}

/// What the keeper knows of one outbox file.
struct Kept {
    outbox: Outbox,
    watch: Watch,
    /// Waiting messages and dead lines, as far as the keeper knows (what it read, plus what
    /// it wrote since): only to decide when to compact.
    live: usize,
    dead: usize,
}

struct State {
    dir: PathBuf,
    app: mpsc::Sender<NetEvent>,
    net: mpsc::UnboundedSender<Cmd>,
    files: HashMap<String, Kept>,
}

impl State {
    fn run(mut self, mut rx: mpsc::UnboundedReceiver<Request>) {
        while let Some(first) = rx.blocking_recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            self.carry_out(batch);
        }
    }

    fn kept(&mut self, user: &Username) -> &mut Kept {
        let dir = &self.dir;
        self.files.entry(user.key()).or_insert_with(|| Kept {
            outbox: Outbox::new(dir, user),
            watch: Watch::default(),
            live: 0,
            dead: 0,
        })
    }

    /// Carries out a batch in order, each run of writes to one outbox in one append.
    fn carry_out(&mut self, batch: Vec<Request>) {
        let mut run: Vec<Write> = Vec::new();
        for request in batch {
            match request {
                Request::Write(w) => {
                    if run
                        .first()
                        .is_some_and(|f| f.user().key() != w.user().key())
                    {
                        self.write(std::mem::take(&mut run));
                    }
                    run.push(w);
                }
                Request::Load { user, reply } => {
                    self.write(std::mem::take(&mut run));
                    let _ = reply.send(self.load(&user));
                }
                Request::Refresh { user, reply } => {
                    self.write(std::mem::take(&mut run));
                    let _ = reply.send(self.refresh(&user));
                }
            }
        }
        self.write(run);
    }

    /// Appends a run of writes to one outbox, then says what was queued.
    fn write(&mut self, run: Vec<Write>) {
        let Some(first) = run.first() else { return };
        let user = first.user().clone();
        let records: Vec<Record> = run
            .iter()
            .map(|w| match w {
                Write::Add { outgoing, .. } => Record::Add(outgoing.clone()),
                Write::Done { client_id, .. } => Record::Done {
                    client_id: client_id.clone(),
                },
            })
            .collect();
        let kept = self.kept(&user);
        let written = kept.outbox.append(&records, Some(&mut kept.watch));
        for r in &records {
            match r {
                Record::Add(_) => kept.live += 1,
                // The `done` line and the `add` it answers.
                Record::Done { .. } => {
                    kept.live = kept.live.saturating_sub(1);
                    kept.dead += 2;
                }
            }
        }
        if written.is_ok() && kept.dead >= COMPACT_MIN_DEAD && kept.dead > kept.live {
            // The load compacts when due; it also rereads, so the counts are exact again.
            if let Err(e) = self.load(&user) {
                tracing::warn!(error = %format!("{e:#}"), "cannot compact the outbox");
            }
        }
        if let Err(e) = &written {
            // Still handed on to be sent (the best chance it has now), but never shown as
            // queued: it is not on disk.
            let _ = self.app.blocking_send(NetEvent::Error(format!(
                "could not save to the outbox: {e:#}"
            )));
        }
        for w in run {
            if let Write::Add { sender, outgoing } = w {
                if written.is_ok() {
                    let _ = self.app.blocking_send(NetEvent::Queued {
                        sender: sender.clone(),
                        outgoing: outgoing.clone(),
                        after: None,
                    });
                }
                let _ = self.net.send(Cmd::Send { sender, outgoing });
            }
        }
    }

    fn load(&mut self, user: &Username) -> anyhow::Result<Vec<Outgoing>> {
        let kept = self.kept(user);
        let loaded = kept.outbox.load()?;
        kept.watch = loaded.watch;
        kept.live = loaded.entries.len();
        kept.dead = loaded.dead;
        Ok(loaded.entries)
    }

    fn refresh(&mut self, user: &Username) -> Option<Vec<Outgoing>> {
        let kept = self.kept(user);
        if !kept.watch.changed(kept.outbox.path()) {
            return None;
        }
        let read = match kept.outbox.try_lock_sending() {
            Ok(Some(_reading)) => self.load(user),
            Ok(None) => return None,
            Err(e) => Err(e),
        };
        read.inspect_err(|e| tracing::warn!(error = %format!("{e:#}"), "cannot read the outbox"))
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::tests::out;

    /// Each send is on disk before the app hears it is queued and before the network task
    /// gets it; both hear in the order typed; the keeper's own writes are not news to
    /// `refresh`, another process's are (unless a `send` holds the sending lock); and the
    /// thread ends, its work done, once the handles are gone.
    #[tokio::test]
    async fn sends_are_on_disk_before_anyone_hears_of_them() {
        let dir = tempfile::tempdir().unwrap();
        let alice = Username::parse("alice").unwrap();
        let outbox = Outbox::new(dir.path(), &alice);
        let (app_tx, mut app_rx) = mpsc::channel(16);
        let (net_tx, mut net_rx) = mpsc::unbounded_channel();
        let (keeper, thread) = Keeper::spawn(dir.path().to_owned(), app_tx, net_tx).unwrap();
        assert!(keeper.load(&alice).await.unwrap().is_empty());
        for id in ["a", "b", "c"] {
            keeper.add(alice.clone(), out(id));
        }
        for id in ["a", "b", "c"] {
            let Some(NetEvent::Queued { outgoing, .. }) = app_rx.recv().await else {
                panic!("expected Queued");
            };
            assert_eq!(outgoing.client_id.as_str(), id);
            let on_disk: Vec<_> = outbox.entries().unwrap();
            assert!(on_disk.iter().any(|o| o.client_id.as_str() == id));
            let Some(Cmd::Send { outgoing, .. }) = net_rx.recv().await else {
                panic!("expected Send");
            };
            assert_eq!(outgoing.client_id.as_str(), id);
        }
        keeper.done(&alice, ClientId::parse("b").unwrap());
        assert_eq!(keeper.refresh(&alice).await, None, "only our own writes");
        outbox.push(&out("s1")).unwrap();
        let lock = outbox.try_lock_sending().unwrap().unwrap();
        assert_eq!(
            keeper.refresh(&alice).await,
            None,
            "a send is delivering it"
        );
        drop(lock);
        let seen: Vec<String> = keeper
            .refresh(&alice)
            .await
            .unwrap()
            .iter()
            .map(|o| o.client_id.to_string())
            .collect();
        assert_eq!(seen, ["a", "c", "s1"]);
        keeper.add(alice.clone(), out("last"));
        drop(keeper);
        assert!(thread.join(Duration::from_secs(10)).await);
        assert_eq!(
            outbox.entries().unwrap().len(),
            4,
            "the last add was written"
        );
    }
}
