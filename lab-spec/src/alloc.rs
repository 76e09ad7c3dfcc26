//! Handing out numbered slots (host numbers, /31s, /24s) from a pool,
//! keyed by names so that the same names always get the same slots.
//!
//! Every name has a home slot: a stable hash of the name modulo the pool
//! size. Pinned slots (fixed addresses, `id`) are taken first; then the
//! other names, in sorted order, take their home slot or, if it is taken,
//! the next free one (linear probing). Adding a name whose home slot is free
//! therefore moves nobody; a name that had to move is "displaced" and
//! `lab plan` warns about it, because it may move again when the names
//! around it change. No allocator over a finite pool can avoid that in
//! every case (see README, "Address plan").

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use crate::diagnostics::{Diagnostic, Span};

/// The code of a warning about a name that did not get its home slot.
pub const DISPLACED: &str = "displaced";

/// The name a [`DISPLACED`] warning is about (`leaf1`, `link a:x - b:y`).
pub fn displaced_name(d: &Diagnostic) -> Option<&str> {
    if d.code != Some(DISPLACED) {
        return None;
    }
    d.message.split_once(": ").map(|(name, _)| name)
}

/// FNV-1a, 64 bit: stable across runs, platforms and Rust versions (std's
/// hasher is randomised per process).
pub fn fnv1a(text: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The slot a key would like, in a pool of `count` slots.
pub fn home_slot(key: &str, count: u64) -> u64 {
    if count == 0 { 0 } else { fnv1a(key) % count }
}

/// One thing that wants a slot.
#[derive(Debug, Clone)]
pub struct Want {
    /// Allocation key (a node name, `a:if|b:if` for a link, ...).
    pub key: String,
    /// How to name it in messages: `leaf1`, `link spine1:eth1 - leaf1:eth1`.
    pub owner: String,
    /// Where it is defined.
    pub span: Span,
    /// Fixed slots and where they were given.
    pub pin: Option<(Range<u64>, Span)>,
}

/// A pool of `count` slots being handed out.
pub struct Space<'a> {
    /// What a slot is, for messages: `loopback`, `management address`.
    pub what: &'a str,
    /// The pool, for messages: `pools.loopback 10.0.0.0/24`.
    pub pool: String,
    /// Where the pool was set, if it was.
    pub pool_span: Option<Span>,
    /// Help for a pool that is too small.
    pub grow_help: String,
    pub count: u64,
    /// Slot number to its value as people read it.
    pub show: Box<dyn Fn(u64) -> String + 'a>,
    /// Home slots chosen by the caller instead of the hash of the key (an
    /// IPv6 address takes the host number of its IPv4 twin), modulo `count`.
    pub homes: BTreeMap<String, u64>,
    taken: HashMap<u64, String>,
}

impl std::fmt::Debug for Space<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Space").field("what", &self.what).field("pool", &self.pool).finish()
    }
}

impl<'a> Space<'a> {
    pub fn new(
        what: &'a str,
        pool: String,
        pool_span: Option<Span>,
        count: u64,
        show: impl Fn(u64) -> String + 'a,
    ) -> Self {
        Space {
            what,
            grow_help: format!(
                "give {} a shorter prefix (more addresses)",
                pool.split(' ').next().unwrap_or("the pool")
            ),
            pool,
            pool_span,
            count,
            show: Box::new(show),
            homes: BTreeMap::new(),
            taken: HashMap::new(),
        }
    }

    /// Take a slot for something that is not a `Want` (the controller).
    pub fn reserve(&mut self, slot: u64, owner: &str) {
        if slot < self.count {
            self.taken.entry(slot).or_insert_with(|| owner.to_string());
        }
    }

    /// Give every want a slot: pinned ones first, then the rest in key
    /// order. Returns key to first slot; problems go to `found`.
    pub fn allocate(
        &mut self,
        wants: &[Want],
        found: &mut Vec<Diagnostic>,
    ) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for want in wants {
            if let Some((range, span)) = &want.pin {
                self.pin(want, range.clone(), span, found);
                out.insert(want.key.clone(), range.start);
            }
        }
        let mut free: Vec<&Want> = wants.iter().filter(|w| w.pin.is_none()).collect();
        free.sort_by(|a, b| a.key.cmp(&b.key));
        let room = self.count.saturating_sub(self.taken.len() as u64);
        if free.len() as u64 > room {
            self.too_small(&free, room, found);
            return out;
        }
        for want in free {
            let (slot, displaced_by) = self.probe(&want.key);
            self.taken.insert(slot, want.owner.clone());
            out.insert(want.key.clone(), slot);
            if let Some(other) = displaced_by {
                found.push(self.displaced(want, &other, slot));
            }
        }
        out
    }

    fn pin(&mut self, want: &Want, range: Range<u64>, span: &Span, found: &mut Vec<Diagnostic>) {
        for slot in range.start..range.end.min(self.count) {
            match self.taken.get(&slot) {
                Some(owner) if *owner != want.owner => {
                    found.push(
                        Diagnostic::error(
                            span.clone(),
                            format!(
                                "{} {} of {} collides with {owner}",
                                self.what,
                                (self.show)(range.start),
                                want.owner
                            ),
                        )
                        .help(format!(
                            "pick another {}, or remove it to have one allocated",
                            self.what
                        )),
                    );
                    return;
                }
                Some(_) => {}
                None => {
                    self.taken.insert(slot, want.owner.clone());
                }
            }
        }
    }

    fn home(&self, key: &str) -> u64 {
        match self.homes.get(key) {
            Some(home) if self.count > 0 => home % self.count,
            _ => home_slot(key, self.count),
        }
    }

    /// The home slot if free, else the next free one; and who sits at home.
    fn probe(&self, key: &str) -> (u64, Option<String>) {
        let home = self.home(key);
        let mut slot = home;
        while self.taken.contains_key(&slot) {
            slot = (slot + 1) % self.count;
        }
        let displaced_by = (slot != home).then(|| self.taken[&home].clone());
        (slot, displaced_by)
    }

    fn too_small(&self, free: &[&Want], room: u64, found: &mut Vec<Diagnostic>) {
        let span = self.pool_span.clone().unwrap_or_else(|| free[room as usize].span.clone());
        found.push(
            Diagnostic::error(
                span,
                format!(
                    "{} is too small: {} needed, room for {room}",
                    self.pool,
                    crate::diagnostics::count(free.len(), self.what),
                ),
            )
            .help(self.grow_help.clone()),
        );
    }

    fn displaced(&self, want: &Want, other: &str, slot: u64) -> Diagnostic {
        let home = self.home(&want.key);
        Diagnostic::warning(
            want.span.clone(),
            format!(
                "{}: {} {} is taken by {other}, so it gets {}",
                want.owner,
                self.what,
                (self.show)(home),
                (self.show)(slot)
            ),
        )
        .help("a displaced address can change when names around it change; pin it with `id` or a fixed address to keep it")
        .code(DISPLACED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want(key: &str) -> Want {
        Want { key: key.into(), owner: key.into(), span: 0..0, pin: None }
    }

    #[test]
    fn fnv1a_matches_reference_vectors() {
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a("foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn collisions_probe_forward_and_warn() {
        let mut space = Space::new("slot", "pool".into(), None, 1, |s| s.to_string());
        let mut found = Vec::new();
        assert_eq!(space.allocate(&[want("a")], &mut found).len(), 1);
        // Full now.
        let got = space.allocate(&[want("b")], &mut found);
        assert!(got.is_empty());
        assert!(found[0].message.contains("too small"), "{:?}", found);

        let mut space = Space::new("slot", "pool".into(), None, 4, |s| s.to_string());
        let mut found = Vec::new();
        let home = home_slot("x", 4);
        space.reserve(home, "the controller");
        let got = space.allocate(&[want("x")], &mut found);
        assert_eq!(got["x"], (home + 1) % 4);
        assert!(found[0].message.contains("taken by the controller"), "{:?}", found);
    }
}
