//! Settling deliveries: every delivery on the inbox channel is answered
//! exactly once (ack, requeue or reject), and acks that complete a
//! contiguous run of delivery tags go out as one `basic.ack` with
//! `multiple` set.
//!
//! [`AckBook`] is the pure part: given the settlements that came in since
//! the last round, it says which frames to send. `Acker` is the task that
//! feeds it and sends the frames on the channel directly (not through
//! each delivery's own acker, which costs a round trip through lapin's
//! internal RPC task per message).
//!
//! Nothing waits for a batch to fill: each round sends what is settled at
//! that moment, so an ack is never later than it would be alone, and an ack
//! stuck behind a slow run (a gap in the tags) is sent on its own at once;
//! the batching comes from settlements piling up while a round's frames are
//! written.

use std::collections::BTreeSet;

use lapin::Channel;
use lapin::options::{BasicAckOptions, BasicNackOptions, BasicRejectOptions};
use tokio::sync::{mpsc, oneshot};
use tracing::debug;

/// How a delivery is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// Done with: the broker forgets it.
    Ack,
    /// Not handled: back to the queue, delivered again.
    Requeue,
    /// Refused: not requeued; the inbox dead-letters it.
    Reject,
}

/// A frame for the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// `basic.ack`.
    Ack {
        /// The delivery acknowledged.
        tag: u64,
        /// Also every delivery below `tag` not yet answered.
        multiple: bool,
    },
    /// `basic.nack` with requeue.
    Requeue {
        /// The delivery handed back.
        tag: u64,
    },
    /// `basic.reject` without requeue.
    Reject {
        /// The delivery refused.
        tag: u64,
    },
}

/// Tags above the floor that the book remembers at most; past that (a
/// delivery that is never settled) it stops batching for this channel.
const MAX_TRACKED: usize = 65_536;

/// Which tags of one channel are settled, and what to send for new ones.
#[derive(Debug)]
pub struct AckBook {
    /// Every tag up to here is settled and its frame sent; `None` once the
    /// book gave up batching (every ack then goes alone).
    floor: Option<u64>,
    /// Settled tags above the floor whose frames were sent.
    sent_above: BTreeSet<u64>,
}

impl Default for AckBook {
    fn default() -> Self {
        AckBook::new()
    }
}

impl AckBook {
    /// A book for a new channel (its delivery tags start at 1).
    pub fn new() -> AckBook {
        AckBook {
            floor: Some(0),
            sent_above: BTreeSet::new(),
        }
    }

    /// The frames that settle `batch`, in the order to send them: requeues
    /// and rejects first, each alone, then one `multiple` ack for the acks
    /// that extend the contiguous settled run from the floor, then the
    /// acks beyond a gap, each alone.
    pub fn settle(&mut self, batch: &[(u64, Settle)]) -> Vec<Frame> {
        let mut frames = Vec::new();
        let Some(floor) = self.floor else {
            frames.extend(batch.iter().map(|&(tag, how)| single(tag, how)));
            return frames;
        };
        let mut acks = BTreeSet::new();
        for &(tag, how) in batch {
            if tag <= floor || self.sent_above.contains(&tag) || acks.contains(&tag) {
                debug!(delivery_tag = tag, "delivery settled twice; ignored");
                continue;
            }
            match how {
                Settle::Ack => {
                    acks.insert(tag);
                }
                Settle::Requeue | Settle::Reject => {
                    frames.push(single(tag, how));
                    self.sent_above.insert(tag);
                }
            }
        }
        // Extend the settled run: through acks of this batch and through
        // tags already answered.
        let mut top = floor;
        // The run's newest ack of this batch, and how many the run holds.
        let mut last_new = None;
        let mut new_in_run = 0;
        loop {
            let next = top + 1;
            if acks.remove(&next) {
                last_new = Some(next);
                new_in_run += 1;
            } else if !self.sent_above.remove(&next) {
                break;
            }
            top = next;
        }
        // The frame names an outstanding tag (never one answered before:
        // the broker could refuse it as unknown); `multiple` takes in the
        // run's other new acks, and tags answered before are no longer the
        // broker's to acknowledge.
        if let Some(tag) = last_new {
            frames.push(Frame::Ack {
                tag,
                multiple: new_in_run > 1,
            });
        }
        self.floor = Some(top);
        for tag in acks {
            frames.push(Frame::Ack {
                tag,
                multiple: false,
            });
            self.sent_above.insert(tag);
        }
        if self.sent_above.len() > MAX_TRACKED {
            debug!(
                tracked = self.sent_above.len(),
                "a delivery stays unsettled; acks now go one by one on this channel"
            );
            self.floor = None;
            self.sent_above.clear();
        }
        frames
    }
}

fn single(tag: u64, how: Settle) -> Frame {
    match how {
        Settle::Ack => Frame::Ack {
            tag,
            multiple: false,
        },
        Settle::Requeue => Frame::Requeue { tag },
        Settle::Reject => Frame::Reject { tag },
    }
}

/// Settles deliveries of one channel; cheap to clone. Settlements sent
/// after the channel is gone are dropped: the broker redelivers whatever
/// was not acknowledged.
#[derive(Clone, Debug)]
pub(crate) struct Acker {
    tx: mpsc::UnboundedSender<Message>,
}

#[derive(Debug)]
enum Message {
    Settle(u64, Settle),
    /// Answered once every settlement sent before it is on the wire.
    Flush(oneshot::Sender<()>),
}

impl Acker {
    /// Starts the task that answers `channel`'s deliveries.
    pub fn spawn(channel: Channel) -> Acker {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(channel, rx));
        Acker { tx }
    }

    /// Answers delivery `tag`.
    pub fn settle(&self, tag: u64, how: Settle) {
        let _ = self.tx.send(Message::Settle(tag, how));
    }

    /// Resolves once every settlement made before the call has been
    /// written (or failed); before a clean close, so that ticks already
    /// handled are not delivered again.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }
}

async fn run(channel: Channel, mut rx: mpsc::UnboundedReceiver<Message>) {
    let mut book = AckBook::new();
    let mut messages = Vec::new();
    let mut batch = Vec::new();
    let mut flushes = Vec::new();
    while rx.recv_many(&mut messages, 1024).await > 0 {
        for message in messages.drain(..) {
            match message {
                Message::Settle(tag, how) => batch.push((tag, how)),
                Message::Flush(done) => flushes.push(done),
            }
        }
        for frame in book.settle(&batch) {
            let sent = match frame {
                Frame::Ack { tag, multiple } => {
                    channel.basic_ack(tag, BasicAckOptions { multiple }).await
                }
                Frame::Requeue { tag } => {
                    channel
                        .basic_nack(
                            tag,
                            BasicNackOptions {
                                requeue: true,
                                multiple: false,
                            },
                        )
                        .await
                }
                Frame::Reject { tag } => {
                    channel
                        .basic_reject(tag, BasicRejectOptions { requeue: false })
                        .await
                }
            };
            if let Err(e) = sent {
                debug!(
                    ?frame,
                    "not sent ({e}); the broker redelivers what was not acknowledged"
                );
            }
        }
        batch.clear();
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(tag: u64) -> (u64, Settle) {
        (tag, Settle::Ack)
    }

    #[test]
    fn contiguous_acks_go_out_as_one_multiple_ack() {
        let mut book = AckBook::new();
        assert_eq!(
            book.settle(&[ack(2), ack(1), ack(3)]),
            [Frame::Ack {
                tag: 3,
                multiple: true
            }]
        );
        assert_eq!(
            book.settle(&[ack(4)]),
            [Frame::Ack {
                tag: 4,
                multiple: false
            }]
        );
    }

    #[test]
    fn an_ack_behind_a_gap_is_not_held_back() {
        let mut book = AckBook::new();
        // Tag 1 is still running; 2 and 3 are done.
        assert_eq!(
            book.settle(&[ack(2), ack(3)]),
            [
                Frame::Ack {
                    tag: 2,
                    multiple: false
                },
                Frame::Ack {
                    tag: 3,
                    multiple: false
                }
            ]
        );
        // Tag 1 ends: only it is acknowledged (2 and 3 are already), and the
        // floor moves past all three.
        assert_eq!(
            book.settle(&[ack(1)]),
            [Frame::Ack {
                tag: 1,
                multiple: false
            }]
        );
        assert_eq!(
            book.settle(&[ack(4), ack(5)]),
            [Frame::Ack {
                tag: 5,
                multiple: true
            }]
        );
    }

    #[test]
    fn rejects_and_requeues_go_first_and_alone_and_a_multiple_ack_spans_them() {
        let mut book = AckBook::new();
        let frames = book.settle(&[ack(1), (2, Settle::Reject), ack(3), (4, Settle::Requeue)]);
        assert_eq!(
            frames,
            [
                Frame::Reject { tag: 2 },
                Frame::Requeue { tag: 4 },
                // Tag 2 is no longer the broker's to acknowledge: an ack up
                // to 3 with `multiple` acknowledges 1 and 3 only.
                Frame::Ack {
                    tag: 3,
                    multiple: true
                }
            ]
        );
    }

    #[test]
    fn a_tag_settled_twice_is_answered_once() {
        let mut book = AckBook::new();
        assert_eq!(book.settle(&[ack(1), ack(1)]).len(), 1);
        assert!(book.settle(&[ack(1), (1, Settle::Reject)]).is_empty());
        assert_eq!(book.settle(&[ack(3)]).len(), 1);
        assert!(book.settle(&[(3, Settle::Requeue)]).is_empty());
    }

    #[test]
    fn a_delivery_never_settled_stops_batching_but_not_acking() {
        let mut book = AckBook::new();
        // Tag 1 never settles; everything after it is acknowledged alone.
        let many: Vec<_> = (2..=(MAX_TRACKED as u64 + 2)).map(ack).collect();
        let frames = book.settle(&many);
        assert_eq!(frames.len(), many.len());
        assert!(frames.iter().all(|f| matches!(
            f,
            Frame::Ack {
                multiple: false,
                ..
            }
        )));
        assert_eq!(book.floor, None);
        assert!(book.sent_above.is_empty());
        assert_eq!(
            book.settle(&[ack(100_000), ack(100_001)]),
            [
                Frame::Ack {
                    tag: 100_000,
                    multiple: false
                },
                Frame::Ack {
                    tag: 100_001,
                    multiple: false
                }
            ]
        );
    }

    #[test]
    fn every_settled_tag_is_covered_exactly_once() {
        // Any order, any batching: each tag ends up answered by exactly one
        // frame (alone, or inside one multiple ack), never by two.
        let orders: [&[u64]; 4] = [
            &[1, 2, 3, 4, 5, 6, 7, 8],
            &[8, 7, 6, 5, 4, 3, 2, 1],
            &[2, 4, 6, 8, 1, 3, 5, 7],
            &[3, 1, 2, 7, 5, 8, 4, 6],
        ];
        for order in orders {
            for batch_size in 1..=4 {
                let mut book = AckBook::new();
                let mut answered = [0u32; 9];
                let mut outstanding: BTreeSet<u64> = (1..=8).collect();
                let mut submitted = BTreeSet::new();
                for chunk in order.chunks(batch_size) {
                    submitted.extend(chunk.iter().copied());
                    let batch: Vec<_> = chunk
                        .iter()
                        .map(|&t| {
                            (
                                t,
                                if t % 3 == 0 {
                                    Settle::Reject
                                } else {
                                    Settle::Ack
                                },
                            )
                        })
                        .collect();
                    for frame in book.settle(&batch) {
                        let covered: Vec<u64> = match frame {
                            Frame::Ack {
                                tag,
                                multiple: true,
                            } => {
                                assert!(outstanding.contains(&tag), "{order:?}: {frame:?}");
                                outstanding.range(..=tag).copied().collect()
                            }
                            Frame::Ack { tag, .. }
                            | Frame::Reject { tag }
                            | Frame::Requeue { tag } => {
                                // Never a tag the broker no longer holds.
                                assert!(outstanding.contains(&tag), "{order:?}: {frame:?}");
                                vec![tag]
                            }
                        };
                        for tag in covered {
                            // A multiple ack must not cover a tag not yet settled.
                            assert!(
                                submitted.contains(&tag),
                                "{order:?}/{batch_size}: {frame:?} covers {tag}"
                            );
                            outstanding.remove(&tag);
                            answered[tag as usize] += 1;
                        }
                    }
                }
                assert!(outstanding.is_empty(), "{order:?}/{batch_size}");
                assert!(
                    answered[1..].iter().all(|&n| n == 1),
                    "{order:?}/{batch_size}"
                );
            }
        }
    }
}
