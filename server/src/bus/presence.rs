//! Who is online on the other instances: pure bookkeeping, fed by the Redis presence task.
//!
//! Each instance keeps, in Redis, a hash of the users it has connections for, stamped with
//! its *run* (random per process start, so a restarted instance of the same name is a new
//! one) and a *sequence number* that its every change moves on by one; each change is also
//! published as an event carrying the same stamp. Here, per other instance, the newest
//! stamp seen decides: an event that follows it is applied, an older one is stale and
//! ignored, and one that skips ahead (a lost event, or a new run) means "read its hash
//! again" ([`Resync`]). A hash read is applied unless it is older than what was seen, so a
//! read that crosses an event in flight cannot undo it. An instance whose hash expired
//! (it stopped refreshing it: killed) is [`gone`](ClusterPresence::gone).
//!
//! The answer is what the hub needs: users whose "online on some other instance" flipped.

use std::collections::HashMap;

use natter_shared::Username;

/// One other instance's last known state.
struct Instance {
    run: String,
    seq: u64,
    /// Case-folded name → name.
    users: HashMap<String, Username>,
}

/// The other instances' users.
#[derive(Default)]
pub(super) struct ClusterPresence {
    instances: HashMap<String, Instance>,
    /// Case-folded name → (name, on how many other instances).
    counts: HashMap<String, (Username, usize)>,
}

/// An event cannot be applied: read that instance's hash.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Resync;

/// "Online somewhere else" flipped for this user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Flip {
    pub user: Username,
    pub online: bool,
}

impl ClusterPresence {
    /// An event from `instance`: `changes` at stamp `(run, seq)`.
    pub(super) fn event(
        &mut self,
        instance: &str,
        run: &str,
        seq: u64,
        changes: &[(Username, bool)],
    ) -> Result<Vec<Flip>, Resync> {
        let Some(known) = self.instances.get_mut(instance) else {
            return Err(Resync);
        };
        if known.run != run || seq > known.seq + 1 {
            return Err(Resync);
        }
        if seq <= known.seq {
            return Ok(Vec::new());
        }
        known.seq = seq;
        let mut flips = Vec::new();
        for (user, online) in changes {
            let key = user.key();
            let changed = if *online {
                known.users.insert(key.clone(), user.clone()).is_none()
            } else {
                known.users.remove(&key).is_some()
            };
            if changed {
                flips.extend(count(&mut self.counts, user, *online));
            }
        }
        Ok(flips)
    }

    /// `instance`'s hash as read: its users at stamp `(run, seq)`. Ignored if older than the
    /// stamp already seen for the same run.
    pub(super) fn snapshot(
        &mut self,
        instance: &str,
        run: &str,
        seq: u64,
        users: Vec<Username>,
    ) -> Vec<Flip> {
        if let Some(known) = self.instances.get(instance)
            && known.run == run
            && seq < known.seq
        {
            return Vec::new();
        }
        let new: HashMap<String, Username> = users.into_iter().map(|u| (u.key(), u)).collect();
        let old = self
            .instances
            .insert(
                instance.to_owned(),
                Instance {
                    run: run.to_owned(),
                    seq,
                    users: HashMap::new(),
                },
            )
            .map(|i| i.users)
            .unwrap_or_default();
        let mut flips = Vec::new();
        for (key, user) in &old {
            if !new.contains_key(key) {
                flips.extend(count(&mut self.counts, user, false));
            }
        }
        for (key, user) in &new {
            if !old.contains_key(key) {
                flips.extend(count(&mut self.counts, user, true));
            }
        }
        if let Some(i) = self.instances.get_mut(instance) {
            i.users = new;
        }
        flips
    }

    /// `instance` is no more (its hash expired or was deleted): its users are offline there.
    pub(super) fn gone(&mut self, instance: &str) -> Vec<Flip> {
        let Some(old) = self.instances.remove(instance) else {
            return Vec::new();
        };
        old.users
            .values()
            .filter_map(|u| count(&mut self.counts, u, false))
            .collect()
    }

    /// The other instances known now.
    pub(super) fn instances(&self) -> impl Iterator<Item = &str> {
        self.instances.keys().map(String::as_str)
    }
}

/// Counts `user` in (or out of) one more instance; the flip, if that changed whether they
/// are online on any.
fn count(
    counts: &mut HashMap<String, (Username, usize)>,
    user: &Username,
    online: bool,
) -> Option<Flip> {
    let key = user.key();
    if online {
        let entry = counts.entry(key).or_insert_with(|| (user.clone(), 0));
        entry.1 += 1;
        (entry.1 == 1).then(|| Flip {
            user: entry.0.clone(),
            online: true,
        })
    } else {
        let entry = counts.get_mut(&key)?;
        entry.1 -= 1;
        if entry.1 > 0 {
            return None;
        }
        let (user, _) = counts.remove(&key)?;
        Some(Flip {
            user,
            online: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Username {
        Username::parse(s).unwrap()
    }

    fn flips(f: &[Flip]) -> Vec<(String, bool)> {
        let mut v: Vec<_> = f.iter().map(|f| (f.user.key(), f.online)).collect();
        v.sort();
        v
    }

    /// A user online on two instances flips once each way; stale events and reads are
    /// ignored; a skipped sequence number asks for a read; a gone instance takes its users.
    #[test]
    fn union_over_instances_with_stamps() {
        let mut p = ClusterPresence::default();
        assert_eq!(p.event("a", "r1", 1, &[(u("ann"), true)]), Err(Resync));
        assert_eq!(
            flips(&p.snapshot("a", "r1", 1, vec![u("ann")])),
            [("ann".into(), true)]
        );
        assert_eq!(
            flips(&p.snapshot("b", "r9", 4, vec![u("Ann"), u("bob")])),
            [("bob".into(), true)]
        );
        // Ann leaves a: still on b, no flip.
        assert_eq!(p.event("a", "r1", 2, &[(u("ann"), false)]), Ok(vec![]));
        // A read of a that is older than event 2 cannot bring her back.
        assert!(p.snapshot("a", "r1", 1, vec![u("ann")]).is_empty());
        // Stale event, then one that skips 6: a read is needed.
        assert_eq!(p.event("b", "r9", 3, &[(u("bob"), false)]), Ok(vec![]));
        assert_eq!(p.event("b", "r9", 6, &[(u("bob"), false)]), Err(Resync));
        // b is killed: both of its users go, Ann now offline everywhere.
        assert_eq!(
            flips(&p.gone("b")),
            [("ann".into(), false), ("bob".into(), false)]
        );
        // a restarted (new run): its events need a read first.
        assert_eq!(p.event("a", "r2", 1, &[(u("cy"), true)]), Err(Resync));
        assert_eq!(p.instances().collect::<Vec<_>>(), ["a"]);
    }
}
