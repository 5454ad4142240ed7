//! Criterion micro-benchmarks of the SEATA codec: encode and decode of every message type
//! (bodies), and whole frames for the requests on the hot path.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ferrata_bench::samples::sample_messages;
use ferrata_proto::{
    CodecContext, DEFAULT_MAX_DECOMPRESSED_LEN, DEFAULT_MAX_FRAME_LEN, Message, MsgType,
    decode_body, decode_frame, encode_message,
};

fn bodies(c: &mut Criterion) {
    let ctx = CodecContext::default();
    let mut encode = c.benchmark_group("encode");
    let mut buf = BytesMut::with_capacity(4096);
    for message in sample_messages() {
        buf.clear();
        message.encode(&ctx, &mut buf);
        encode.throughput(Throughput::Bytes(buf.len() as u64));
        encode.bench_function(message.name(), |b| {
            b.iter(|| {
                buf.clear();
                black_box(&message).encode(&ctx, &mut buf);
                black_box(buf.len())
            })
        });
    }
    encode.finish();

    let mut decode = c.benchmark_group("decode");
    for message in sample_messages() {
        let mut body = BytesMut::new();
        message.encode(&ctx, &mut body);
        let body = body.freeze();
        decode.throughput(Throughput::Bytes(body.len() as u64));
        decode.bench_function(message.name(), |b| {
            b.iter(|| Message::decode(black_box(&body), &ctx))
        });
    }
    decode.finish();
}

fn frames(c: &mut Criterion) {
    let ctx = CodecContext::default();
    let hot = sample_messages().into_iter().filter(|m| {
        matches!(
            m,
            Message::GlobalBegin(_)
                | Message::GlobalBeginResponse(_)
                | Message::BranchRegister(_)
                | Message::GlobalCommit(_)
                | Message::MergedWarp(_)
        )
    });
    let mut group = c.benchmark_group("frame");
    let mut out = BytesMut::with_capacity(4096);
    for message in hot {
        group.bench_function(format!("encode/{}", message.name()), |b| {
            b.iter(|| {
                out.clear();
                encode_message(
                    MsgType::Request,
                    7,
                    1,
                    0,
                    black_box(&message),
                    &ctx,
                    &mut out,
                )
            })
        });
        out.clear();
        let _ = encode_message(MsgType::Request, 7, 1, 0, &message, &ctx, &mut out);
        let wire = out.clone().freeze();
        group.bench_function(format!("decode/{}", message.name()), |b| {
            b.iter(|| {
                let mut buf = BytesMut::from(black_box(&wire[..]));
                let frame = decode_frame(&mut buf, DEFAULT_MAX_FRAME_LEN).ok().flatten();
                frame.map(|f| decode_body(&f, &ctx, DEFAULT_MAX_DECOMPRESSED_LEN).is_ok())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bodies, frames);
criterion_main!(benches);
