//! Hostile input never panics: random bytes and mutated valid frames go through the frame
//! decoder, the body decoder (both dialects, several client versions) and every decompressor.
//! A stable stand-in for the cargo-fuzz target in /fuzz.

use bytes::BytesMut;
use ferrata_proto::{
    BranchRegisterRequest, BranchType, ClientVersion, CodecContext, Dialect, GlobalBeginResponse,
    MergedWarpMessage, Message, MsgType, ResultInfo, decode_body, decode_frame, decompress,
    encode_message,
};
use proptest::prelude::*;

const MAX: usize = 64 * 1024;

fn contexts() -> [CodecContext; 5] {
    [
        CodecContext::default(),
        CodecContext::default().with_protocol_version(2),
        CodecContext::new(ClientVersion::new(1, 4, 2), Dialect::Java),
        CodecContext::new(ClientVersion::new(1, 5, 2), Dialect::Go),
        CodecContext::new(ClientVersion::new(1, 1, 0), Dialect::Go),
    ]
}

/// What the server's read loop does with arbitrary bytes.
fn exercise(bytes: &[u8]) {
    let mut buf = BytesMut::from(bytes);
    while let Ok(Some(frame)) = decode_frame(&mut buf, MAX) {
        if frame.msg_type.is_heartbeat() {
            let _ = frame.heartbeat_response(frame.version);
            continue;
        }
        for ctx in contexts() {
            if let Ok(msg) = decode_body(&frame, &ctx, MAX) {
                // Whatever decodes must also encode.
                let mut out = BytesMut::new();
                let _ = encode_message(MsgType::Response, 1, 1, 0, &msg, &ctx, &mut out);
            }
        }
    }
    for ctx in contexts() {
        let _ = Message::decode(bytes, &ctx);
    }
    for compressor in 0..=8u8 {
        let _ = decompress(compressor, bytes, MAX);
    }
}

/// Valid frames to mutate: a plain request, a batch, compressed bodies of each kind.
fn seeds() -> Vec<Vec<u8>> {
    let ctx = CodecContext::default();
    let register = BranchRegisterRequest {
        xid: "10.0.0.1:8091:123456789".into(),
        branch_type: BranchType::At,
        resource_id: "jdbc:mysql://db/seata".into(),
        lock_key: "order_tbl:1,2,3;stock_tbl:9".into(),
        application_data: "{\"skipCheckLock\":true}".into(),
    };
    let batch = MergedWarpMessage {
        messages: vec![
            register.clone().into(),
            GlobalBeginResponse {
                result: ResultInfo::success(),
                xid: "x:1:2".into(),
                extra_data: String::new(),
            }
            .into(),
        ],
        msg_ids: Some(vec![3, 4]),
    };
    let mut seeds = Vec::new();
    for compressor in [0u8, 1, 2, 4, 5, 6, 7] {
        for msg in [
            Message::from(register.clone()),
            Message::from(batch.clone()),
        ] {
            let mut out = BytesMut::new();
            encode_message(MsgType::Oneway, 8, 1, compressor, &msg, &ctx, &mut out)
                .expect("encode seed");
            seeds.push(out.to_vec());
        }
    }
    seeds
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, xor: u8 },
    Set { at: usize, value: u8 },
    Truncate { len: usize },
    Insert { at: usize, bytes: Vec<u8> },
    Remove { at: usize, len: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(at, xor)| Mutation::Flip { at, xor }),
        (
            any::<usize>(),
            prop::sample::select(vec![0u8, 1, 0x7f, 0x80, 0xff])
        )
            .prop_map(|(at, value)| Mutation::Set { at, value }),
        any::<usize>().prop_map(|len| Mutation::Truncate { len }),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (any::<usize>(), 1..16usize).prop_map(|(at, len)| Mutation::Remove { at, len }),
    ]
}

fn apply(data: &mut Vec<u8>, m: &Mutation) {
    let n = data.len().max(1);
    match m {
        Mutation::Flip { at, xor } => {
            if let Some(b) = data.get_mut(at % n) {
                *b ^= xor;
            }
        }
        Mutation::Set { at, value } => {
            if let Some(b) = data.get_mut(at % n) {
                *b = *value;
            }
        }
        Mutation::Truncate { len } => data.truncate(len % n),
        Mutation::Insert { at, bytes } => {
            let at = at % (data.len() + 1);
            data.splice(at..at, bytes.iter().copied());
        }
        Mutation::Remove { at, len } => {
            let at = at % n;
            let end = (at + len).min(data.len());
            if at < end {
                data.drain(at..end);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        exercise(&bytes);
    }

    /// Random bytes behind a valid header reach the body decoders instead of the magic check.
    #[test]
    fn random_bodies_never_panic(
        body in prop::collection::vec(any::<u8>(), 1..256),
        msg_type in 0..=4u8,
        compressor in 0..=7u8,
        type_code in prop::sample::select(vec![1u16, 2, 4, 6, 11, 13, 14, 17, 22, 59, 60, 101, 103, 121]),
    ) {
        let mut wire = vec![0xda, 0xda, 1];
        let full = 16 + 2 + body.len();
        wire.extend_from_slice(&(full as i32).to_be_bytes());
        wire.extend_from_slice(&16i16.to_be_bytes());
        wire.extend_from_slice(&[msg_type, 1, compressor, 0, 0, 0, 1]);
        wire.extend_from_slice(&type_code.to_be_bytes());
        wire.extend_from_slice(&body);
        exercise(&wire);
    }

    #[test]
    fn mutated_frames_never_panic(
        seed in prop::sample::select(seeds()),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let mut data = seed;
        for m in &mutations {
            apply(&mut data, m);
        }
        exercise(&data);
        // Mutations inside a valid frame's body are what reach the deepest decoder paths:
        // keep the header's lengths consistent with the mutated size.
        if data.len() >= 16 {
            let full = data.len() as i32;
            data[3..7].copy_from_slice(&full.to_be_bytes());
            data[0] = 0xda;
            data[1] = 0xda;
            data[2] = 1;
            data[7..9].copy_from_slice(&16i16.to_be_bytes());
            data[9] %= 5;
            exercise(&data);
        }
    }
}
