//! Subnets handed out as equal blocks of a pool, for both families: IPv4
//! /31s of `pools.p2p` and /24s of `pools.segments`, IPv6 /64s of
//! `pools.p2p6` and `pools.segments6`. A fixed subnet is pinned to the
//! blocks it covers; the rest are allocated by name (see `alloc`).

use std::collections::BTreeMap;
use std::fmt::Display;
use std::ops::Range;

use super::Planner;
use crate::alloc::{Space, Want};
use crate::diagnostics::Span;

/// A pool cut into equal blocks.
pub(super) trait BlockPool: Copy + 'static {
    type Net: Copy + Display;
    fn pool(&self) -> Self::Net;
    fn contains(&self, net: &Self::Net) -> bool;
    fn count(&self) -> u64;
    fn block(&self, slot: u64) -> Self::Net;
    /// The slots a fixed subnet inside the pool covers.
    fn slots_of(&self, net: Self::Net) -> Range<u64>;
}

/// Something that wants a block: a link (by its key) or a segment.
pub(super) struct BlockWant<N> {
    pub key: String,
    /// `link a:x - b:y`, `segment blue`.
    pub owner: String,
    pub span: Span,
    /// The subnet the lab file fixes, and where.
    pub fixed: Option<(N, Span)>,
}

/// How to talk about the blocks of one pool.
pub(super) struct BlockSpace {
    /// What a block is: `link subnet`.
    pub what: &'static str,
    /// The pool's setting: `pools.p2p`.
    pub setting: &'static str,
    /// The key that fixes a block: `subnet`.
    pub key: &'static str,
    /// What to pick instead of a subnet outside the pool: `a /31`.
    pub pick: &'static str,
    pub pool_span: Option<Span>,
    /// Home slots other than the hash of the key (see `Space::homes`).
    pub homes: BTreeMap<String, u64>,
}

impl BlockSpace {
    pub fn new(
        (what, setting): (&'static str, &'static str),
        (key, pick): (&'static str, &'static str),
        pool_span: Option<Span>,
    ) -> Self {
        BlockSpace { what, setting, key, pick, pool_span, homes: BTreeMap::new() }
    }
}

impl Planner<'_> {
    /// One block per want, by key; fixed subnets outside the pool are
    /// reported and get none.
    pub(super) fn blocks<B: BlockPool>(
        &mut self,
        blocks: B,
        how: BlockSpace,
        wants: Vec<BlockWant<B::Net>>,
    ) -> BTreeMap<String, B::Net> {
        let pool = blocks.pool();
        let mut placed = Vec::new();
        let mut fixed = BTreeMap::new();
        for want in wants {
            let pin = match want.fixed {
                Some((net, span)) if !blocks.contains(&net) => {
                    self.error(
                        span,
                        format!(
                            "{} {net} of {} is outside {} {pool}",
                            how.key, want.owner, how.setting
                        ),
                        format!("pick {} in {pool}, or remove it to have one allocated", how.pick),
                    );
                    continue;
                }
                Some((net, span)) => {
                    fixed.insert(want.key.clone(), net);
                    Some((blocks.slots_of(net), span))
                }
                None => None,
            };
            placed.push(Want { key: want.key, owner: want.owner, span: want.span, pin });
        }
        let mut space = Space::new(
            how.what,
            format!("{} {pool}", how.setting),
            how.pool_span,
            blocks.count(),
            move |s| blocks.block(s).to_string(),
        );
        space.homes = how.homes;
        let slots = space.allocate(&placed, &mut self.found);
        slots
            .into_iter()
            .map(|(key, slot)| {
                let net = fixed.get(&key).copied().unwrap_or_else(|| blocks.block(slot));
                (key, net)
            })
            .collect()
    }
}
