//! One Seata connection seen from the generator: request ids, frames encoded straight into a
//! write batch that is flushed once per event-loop turn (so pipelined requests share one
//! syscall), frames decoded from ferrata-net's reader, heartbeats, and the registration
//! handshake. The generator drives both halves from its own event loop, so it uses
//! ferrata-net's reader and writer halves rather than its writer task.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use ferrata_net::{FrameReader, FrameWriter};
use ferrata_proto::{
    BranchCommitResponse, BranchRollbackResponse, BranchStatus, CodecContext,
    DEFAULT_MAX_DECOMPRESSED_LEN, DEFAULT_MAX_FRAME_LEN, Message, MsgType, PROTOCOL_VERSION,
    RegisterRmRequest, RegisterTmRequest, ResultInfo, decode_body,
};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// Java clients ping after 5 s without writing; the TCs drop connections silent for 15-30 s.
pub const HEARTBEAT_AFTER: Duration = Duration::from_secs(5);

/// Identity the generator registers with.
#[derive(Debug, Clone)]
pub struct ClientIdentity {
    pub application_id: String,
    pub transaction_service_group: String,
    /// Client version string; it selects the TC's codec quirks (exception-code ordinals).
    pub version: String,
}

/// A frame from the TC, classified.
#[derive(Debug)]
pub enum Inbound {
    /// MSGTYPE 1: an answer to one of our requests (possibly a batch of answers).
    Response {
        id: i32,
        message: Message,
    },
    /// MSGTYPE 0/2: a request from the TC (phase two, undo-log cleanup).
    Request {
        id: i32,
        message: Message,
    },
    Ping {
        id: i32,
    },
    Pong,
}

/// A registered (or registering) connection.
#[derive(Debug)]
pub struct Conn {
    /// Read it with [`FrameReader::read_more`] (cancel-safe) from the generator's event loop.
    pub reader: FrameReader<OwnedReadHalf>,
    writer: FrameWriter<OwnedWriteHalf>,
    next_id: i32,
    pub ctx: CodecContext,
    pub last_write: Instant,
}

impl Conn {
    pub async fn connect(addr: SocketAddr, ctx: CodecContext) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        stream.set_nodelay(true)?;
        let (reader, writer) = stream.into_split();
        Ok(Conn {
            reader: FrameReader::new(reader, DEFAULT_MAX_FRAME_LEN),
            writer: FrameWriter::new(writer, None),
            next_id: 1,
            ctx,
            last_write: Instant::now(),
        })
    }

    /// A fresh request id: non-negative and wrapping, as Java's counter.
    pub fn next_id(&mut self) -> i32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1) & i32::MAX;
        id
    }

    /// Appends one frame to the write batch (SEATA codec, no compression).
    pub fn queue(&mut self, msg_type: MsgType, id: i32, message: &Message) {
        // Only an unsupported codec or compressor can fail, and these are fixed to 1 and 0.
        let _ = self
            .writer
            .batch()
            .push_message(msg_type, id, 1, 0, message, &self.ctx);
    }

    pub fn queue_ping(&mut self) {
        let id = self.next_id();
        self.writer
            .batch()
            .push_heartbeat(MsgType::HeartbeatRequest, PROTOCOL_VERSION, id);
    }

    pub fn queue_pong(&mut self, id: i32) {
        self.writer
            .batch()
            .push_heartbeat(MsgType::HeartbeatResponse, PROTOCOL_VERSION, id);
    }

    /// Writes everything queued in one go.
    pub async fn flush(&mut self) -> Result<(), ferrata_net::CloseReason> {
        if !self.writer.batch().is_empty() {
            self.writer.flush().await?;
            self.last_write = Instant::now();
        }
        Ok(())
    }

    /// Reads what the socket has; 0 means the TC closed the connection.
    pub async fn read_more(&mut self) -> std::io::Result<usize> {
        self.reader.read_more().await
    }

    /// The next whole frame from the read buffer, decoded.
    pub fn next_inbound(&mut self) -> anyhow::Result<Option<Inbound>> {
        let Some(frame) = self.reader.buffered_frame()? else {
            return Ok(None);
        };
        let inbound = match frame.msg_type {
            MsgType::HeartbeatRequest => Inbound::Ping {
                id: frame.request_id,
            },
            MsgType::HeartbeatResponse => Inbound::Pong,
            MsgType::Response => Inbound::Response {
                id: frame.request_id,
                message: decode_body(&frame, &self.ctx, DEFAULT_MAX_DECOMPRESSED_LEN)?,
            },
            MsgType::Request | MsgType::Oneway => Inbound::Request {
                id: frame.request_id,
                message: decode_body(&frame, &self.ctx, DEFAULT_MAX_DECOMPRESSED_LEN)?,
            },
        };
        Ok(Some(inbound))
    }

    /// Sends one request and waits for its answer, skipping anything else (handshake only).
    pub async fn call(&mut self, message: &Message, timeout: Duration) -> anyhow::Result<Message> {
        let id = self.next_id();
        self.queue(MsgType::Request, id, message);
        self.flush().await?;
        let wait = async {
            loop {
                while let Some(inbound) = self.next_inbound()? {
                    match inbound {
                        Inbound::Response { id: got, message } if got == id => return Ok(message),
                        Inbound::Ping { id } => self.queue_pong(id),
                        _ => {}
                    }
                }
                self.flush().await?;
                if self.read_more().await? == 0 {
                    bail!("the TC closed the connection");
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .with_context(|| format!("no answer to {} within {timeout:?}", message.name()))?
    }

    /// Registers this connection as a TM.
    pub async fn register_tm(
        &mut self,
        who: &ClientIdentity,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let group = &who.transaction_service_group;
        // What a Java TM sends without an access key (spec §8.2); Ferrata also reads a
        // non-empty extraData as "Java, not Go".
        let extra_data = format!(
            "ak=null\ndigest={group},127.0.0.1,{ts}\ntimestamp={ts}\nauthVersion=V4\nvgroup={group}\nip=127.0.0.1\n"
        );
        let request = Message::RegisterTm(RegisterTmRequest {
            version: who.version.clone(),
            application_id: who.application_id.clone(),
            transaction_service_group: group.clone(),
            extra_data,
        });
        match self.call(&request, timeout).await? {
            Message::RegisterTmResponse(r) if r.identified => Ok(()),
            other => bail!("TM registration refused: {other:?}"),
        }
    }

    /// Registers this connection as an RM of `resource_id`.
    pub async fn register_rm(
        &mut self,
        who: &ClientIdentity,
        resource_id: &str,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let request = Message::RegisterRm(RegisterRmRequest {
            version: who.version.clone(),
            application_id: who.application_id.clone(),
            transaction_service_group: who.transaction_service_group.clone(),
            extra_data: String::new(),
            resource_ids: resource_id.to_owned(),
        });
        match self.call(&request, timeout).await? {
            Message::RegisterRmResponse(r) if r.identified => Ok(()),
            other => bail!("RM registration refused: {other:?}"),
        }
    }
}

/// The immediate "done" answer an RM gives to a phase-two request, or `None` for requests
/// that take no answer (UndoLogDelete). The bool says commit (true) or rollback (false).
pub fn phase_two_answer(message: Message) -> Option<(bool, Message)> {
    match message {
        Message::BranchCommit(r) => Some((
            true,
            Message::BranchCommitResponse(BranchCommitResponse {
                result: ResultInfo::success(),
                xid: r.xid,
                branch_id: r.branch_id,
                branch_status: BranchStatus::PhaseTwoCommitted,
            }),
        )),
        Message::BranchRollback(r) => Some((
            false,
            Message::BranchRollbackResponse(BranchRollbackResponse {
                result: ResultInfo::success(),
                xid: r.xid,
                branch_id: r.branch_id,
                branch_status: BranchStatus::PhaseTwoRollbacked,
            }),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrata_proto::{BranchCommitRequest, BranchRollbackRequest, BranchType};

    #[test]
    fn phase_two_requests_are_answered_done_with_the_same_branch() {
        let commit = Message::BranchCommit(BranchCommitRequest {
            xid: "x:1".into(),
            branch_id: 7,
            branch_type: BranchType::At,
            resource_id: "r".into(),
            application_data: String::new(),
        });
        match phase_two_answer(commit) {
            Some((true, Message::BranchCommitResponse(r))) => {
                assert!(r.result.is_success());
                assert_eq!((r.xid.as_str(), r.branch_id), ("x:1", 7));
                assert_eq!(r.branch_status, BranchStatus::PhaseTwoCommitted);
            }
            other => panic!("unexpected {other:?}"),
        }
        let rollback = Message::BranchRollback(BranchRollbackRequest {
            xid: "x:2".into(),
            branch_id: 8,
            branch_type: BranchType::At,
            resource_id: "r".into(),
            application_data: String::new(),
        });
        match phase_two_answer(rollback) {
            Some((false, Message::BranchRollbackResponse(r))) => {
                assert_eq!(r.branch_status, BranchStatus::PhaseTwoRollbacked);
                assert_eq!(r.branch_id, 8);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            phase_two_answer(Message::UndoLogDelete(
                ferrata_proto::UndoLogDeleteRequest {
                    branch_type: BranchType::At,
                    resource_id: "r".into(),
                    save_days: 7,
                }
            ))
            .is_none()
        );
    }
}
