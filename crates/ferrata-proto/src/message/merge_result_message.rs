//! MergeResultMessage (type 60, TC → client): one response per batched request, matched by
//! position (spec §10.3).

use bytes::BytesMut;

use super::{
    CodecContext, Message, MessageCodec, finish_batch, read_batch_header, read_batch_messages,
    start_batch,
};
use crate::codec::{Reader, Result};

/// | # | field         | encoding                    |
/// |---|---------------|-----------------------------|
/// | 1 | contentLength | i32, bytes that follow      |
/// | 2 | count         | i16, N                      |
/// | 3 | messages      | N × (i16 type code + body)  |
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MergeResultMessage {
    pub messages: Vec<Message>,
}

impl MessageCodec for MergeResultMessage {
    const TYPE_CODE: u16 = 60;

    fn encode_fields(&self, ctx: &CodecContext, out: &mut BytesMut) {
        let slot = start_batch(&self.messages, ctx, out);
        finish_batch(slot, out);
    }

    fn decode_fields(r: &mut Reader<'_>, ctx: &CodecContext) -> Result<Self> {
        let (mut sub, count) = read_batch_header(r)?;
        let messages = read_batch_messages(&mut sub, count, ctx)?;
        Ok(MergeResultMessage { messages })
    }
}
