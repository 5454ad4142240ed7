//! MergedWarpMessage (type 59, client → TC): a batch of requests, by default how every Java
//! RM sends its branch requests (spec §10.2).

use bytes::{BufMut, BytesMut};

use super::{
    CodecContext, Message, MessageCodec, finish_batch, read_batch_header, read_batch_messages,
    read_msg_ids, start_batch,
};
use crate::codec::{Reader, Result};

/// | # | field         | encoding                                            |
/// |---|---------------|-----------------------------------------------------|
/// | 1 | contentLength | i32, bytes that follow                              |
/// | 2 | count         | i16, N                                              |
/// | 3 | messages      | N × (i16 type code + body)                          |
/// | 4 | msgIds        | N × i32, only from 1.5.0 clients (present if bytes remain) |
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MergedWarpMessage {
    pub messages: Vec<Message>,
    /// The sub-requests' own request ids; `None` for pre-1.5 clients.
    pub msg_ids: Option<Vec<i32>>,
}

impl MessageCodec for MergedWarpMessage {
    const TYPE_CODE: u16 = 59;

    fn encode_fields(&self, ctx: &CodecContext, out: &mut BytesMut) {
        let slot = start_batch(&self.messages, ctx, out);
        if let Some(ids) = &self.msg_ids {
            // Exactly one id per message: a missing id would shift the receiver's parsing.
            for i in 0..self.messages.len().min(i16::MAX as usize) {
                out.put_i32(ids.get(i).copied().unwrap_or(0));
            }
        }
        finish_batch(slot, out);
    }

    fn decode_fields(r: &mut Reader<'_>, ctx: &CodecContext) -> Result<Self> {
        let (mut sub, count) = read_batch_header(r)?;
        let messages = read_batch_messages(&mut sub, count, ctx)?;
        let msg_ids = if sub.remaining() > 0 {
            Some(read_msg_ids(&mut sub, count)?)
        } else {
            None
        };
        Ok(MergedWarpMessage { messages, msg_ids })
    }
}
