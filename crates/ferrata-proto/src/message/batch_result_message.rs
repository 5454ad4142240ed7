//! BatchResultMessage (type 121, TC → client, since 1.5.0): responses to batched requests,
//! matched by request id (spec §10.4).

use bytes::{BufMut, BytesMut};

use super::{
    CodecContext, Message, MessageCodec, finish_batch, read_batch_header, read_batch_messages,
    read_msg_ids, start_batch,
};
use crate::codec::{Reader, Result};

/// | # | field         | encoding                               |
/// |---|---------------|----------------------------------------|
/// | 1 | contentLength | i32, bytes that follow                 |
/// | 2 | count         | i16, N                                 |
/// | 3 | messages      | N × (i16 type code + body)             |
/// | 4 | msgIds        | N × i32, the sub-request ids answered  |
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BatchResultMessage {
    pub messages: Vec<Message>,
    pub msg_ids: Vec<i32>,
}

impl MessageCodec for BatchResultMessage {
    const TYPE_CODE: u16 = 121;

    fn encode_fields(&self, ctx: &CodecContext, out: &mut BytesMut) {
        let slot = start_batch(&self.messages, ctx, out);
        // Exactly one id per message: a missing id would shift the client's parsing.
        for i in 0..self.messages.len().min(i16::MAX as usize) {
            out.put_i32(self.msg_ids.get(i).copied().unwrap_or(0));
        }
        finish_batch(slot, out);
    }

    fn decode_fields(r: &mut Reader<'_>, ctx: &CodecContext) -> Result<Self> {
        let (mut sub, count) = read_batch_header(r)?;
        let messages = read_batch_messages(&mut sub, count, ctx)?;
        let msg_ids = read_msg_ids(&mut sub, count)?;
        Ok(BatchResultMessage { messages, msg_ids })
    }
}
