use super::*;

const LOCAL: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

fn syn_packet() -> Vec<u8> {
    let seg = SegmentOut {
        src: PEER,
        dst: LOCAL,
        src_port: 40000,
        dst_port: 80,
        seq: SeqNum(1000),
        ack: SeqNum(0),
        flags: flags::SYN,
        window: 65535,
        mss: Some(1460),
        wscale: Some(7),
        sack_permitted: true,
        timestamp: Some((5, 0)),
        sack_blocks: &[],
        ttl: 64,
        partial_checksum: false,
    };
    let mut buf = vec![0u8; 100];
    let n = seg.emit(&mut buf, 0, |_| {});
    buf.truncate(n);
    buf
}

fn fix_ip_checksum(p: &mut [u8]) {
    p[10] = 0;
    p[11] = 0;
    let ihl = usize::from(p[0] & 0xf) * 4;
    let c = !checksum::sum(&p[..ihl]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
}

#[test]
fn round_trips_an_emitted_syn() {
    let p = syn_packet();
    let Ok(Ingress::Tcp { src, seg }) = parse(&p, LOCAL) else {
        panic!("not parsed");
    };
    assert_eq!(src, PEER);
    assert_eq!(
        (seg.src_port, seg.dst_port, seg.seq),
        (40000, 80, SeqNum(1000))
    );
    assert_eq!(seg.flags, flags::SYN);
    assert_eq!(seg.opts.mss, Some(1460));
    assert_eq!(seg.opts.wscale, Some(7));
    assert!(seg.opts.sack_permitted);
    assert_eq!(seg.opts.timestamp, Some((5, 0)));
    assert_eq!(seg.seq_len(), 1);
}

#[test]
fn describe_summarises_tcp_and_survives_anything_else() {
    let mut p = syn_packet();
    assert_eq!(describe(&p), "40000->80 [S] seq=1000 ack=0 win=65535 len=0");
    p[33] = flags::ACK | flags::PSH | flags::FIN;
    p.extend_from_slice(b"abc");
    assert_eq!(
        describe(&p),
        "40000->80 [FP.] seq=1000 ack=0 win=65535 len=3"
    );
    p[9] = PROTO_ICMP;
    assert_eq!(describe(&p), format!("non-TCP {} bytes", p.len()));
    // Short, empty and nonsense headers name their size instead of panicking.
    assert_eq!(describe(&syn_packet()[..30]), "non-TCP 30 bytes");
    assert_eq!(describe(&[]), "non-TCP 0 bytes");
    assert_eq!(describe(&[0xff; 70]), "non-TCP 70 bytes");
    let mut odd = syn_packet();
    odd[32] = 0xf0; // a data offset past the end
    assert!(describe(&odd).ends_with("len=0"));
}

#[test]
fn ip_validation_reasons() {
    let good = syn_packet();
    let check = |p: &[u8], want: DropReason| {
        assert_eq!(parse(p, LOCAL).err(), Some(want));
    };
    check(&good[..19], DropReason::IpTruncated);
    let mut p = good.clone();
    p[0] = 0x65;
    check(&p, DropReason::IpBadVersion);
    let mut p = good.clone();
    p[0] = 0x44;
    check(&p, DropReason::IpBadHeaderLen);
    let mut p = good[..56].to_vec();
    p[0] = 0x4f; // 60 bytes of header in a 56-byte packet
    check(&p, DropReason::IpBadHeaderLen);
    let mut p = good.clone();
    p[2..4].copy_from_slice(&(good.len() as u16 + 1).to_be_bytes());
    fix_ip_checksum(&mut p);
    check(&p, DropReason::IpBadTotalLen);
    let mut p = good.clone();
    p[2..4].copy_from_slice(&19u16.to_be_bytes());
    fix_ip_checksum(&mut p);
    check(&p, DropReason::IpBadTotalLen);
    let mut p = good.clone();
    p[8] ^= 1;
    check(&p, DropReason::IpBadChecksum);
    assert_eq!(
        parse(&good, Ipv4Addr::new(10, 0, 0, 3)).err(),
        Some(DropReason::IpWrongDestination)
    );
    let mut p = good.clone();
    p[6] = 0x20; // MF
    fix_ip_checksum(&mut p);
    check(&p, DropReason::IpFragment);
    let mut p = good.clone();
    p[9] = 17;
    fix_ip_checksum(&mut p);
    check(&p, DropReason::IpUnknownProtocol);
    // Sources no peer has (RFC 1122 section 3.2.1.3): broadcast, multicast, 0/8,
    // 240/4, loopback.
    for src in [
        [255, 255, 255, 255],
        [224, 0, 0, 1],
        [0, 1, 2, 3],
        [240, 0, 0, 1],
        [127, 0, 0, 1],
    ] {
        let mut p = good.clone();
        p[12..16].copy_from_slice(&src);
        fix_ip_checksum(&mut p);
        check(&p, DropReason::IpBadSource);
    }
}
