//! One synthetic participant over real QUIC: speaks the control protocol
//! (Hello, Join), sends pre-encoded speech in talk/pause turns (nothing at all
//! while silent, as a DTX client does), and records what arrives: packets,
//! sequence gaps, lateness against the media timestamps, and the arrival of
//! talkspurt starts for mouth-to-ear through the mixer.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use lowband_core::jitter::Unwrapper;
use lowband_core::rng::Rng;
use lowband_core::wire::audio::TICK_US;
use lowband_core::wire::control::{encode_frame, PROTOCOL_VERSION};
use lowband_core::wire::{AudioPacket, ClientMsg};

use super::speech::Speech;

/// A talkspurt start counts for latency only after the whole room was quiet this long,
/// so the mix itself was silent (in DTX) and its next talkspurt is this one.
const QUIET_BEFORE_ONSET: Duration = Duration::from_millis(800);
/// A mix talkspurt arriving later than this after the onset is not its echo.
const ONSET_MATCH: Duration = Duration::from_millis(1000);

/// What every client in one room shares, to pair a talker's onset with the mix's.
#[derive(Default)]
pub struct RoomShared {
    pub last_voice_sent: Option<Instant>,
    /// The latest quiet-room onset: when it was sent, by which client, and its number.
    pub onset: Option<(Instant, usize, u64)>,
    pub onsets: u64,
    /// Onset to arrival of the mix's talkspurt start at each listener, ms.
    pub mouth_to_ear_ms: Vec<f64>,
}

pub struct Plan {
    pub index: usize,
    pub room: String,
    pub talker: bool,
    /// When to connect.
    pub join_at: Instant,
    /// Counting starts and stops here (all joined, warmed up).
    pub window: (Instant, Instant),
    /// Leave and rejoin every this often (churn), if set.
    pub rejoin_every: Option<Duration>,
    pub seed: u64,
}

/// What one client saw inside the counting window (summed over its sessions).
#[derive(Debug, Default, Clone)]
pub struct ClientReport {
    pub talker: bool,
    pub received: u64,
    pub expected: u64,
    /// Arrival minus media time, relative to the best packet of the session, ms.
    pub lateness_ms: Vec<f32>,
    pub sessions: u32,
    pub failed_connects: u32,
}

pub struct Setup {
    pub addr: std::net::SocketAddr,
    pub endpoint: quinn::Endpoint,
    pub config: quinn::ClientConfig,
    pub speech: Arc<Speech>,
    pub room: Arc<Mutex<RoomShared>>,
}

pub async fn run(plan: Plan, setup: Setup) -> ClientReport {
    let mut report = ClientReport { talker: plan.talker, ..Default::default() };
    let mut rng = Rng::new(plan.seed);
    let mut at = plan.join_at;
    // Talkers start at different points of the speech.
    let mut speech_pos = (rng.next_u64() % setup.speech.frames.len() as u64) as usize;
    while at < plan.window.1 {
        tokio::time::sleep_until(at.into()).await;
        let leave = match plan.rejoin_every {
            Some(every) => (Instant::now() + every).min(plan.window.1),
            None => plan.window.1,
        };
        match session(&plan, &setup, leave, &mut rng, &mut speech_pos, &mut report).await {
            Ok(()) => report.sessions += 1,
            Err(e) => {
                tracing::debug!(client = plan.index, "session failed: {e}");
                report.failed_connects += 1;
            }
        }
        // A churning client is away for a second before it rejoins.
        at = Instant::now() + Duration::from_secs(1);
    }
    report
}

async fn session(plan: &Plan, setup: &Setup, leave: Instant, rng: &mut Rng, speech_pos: &mut usize, report: &mut ClientReport) -> anyhow::Result<()> {
    let conn = setup.endpoint.connect_with(setup.config.clone(), setup.addr, "lowband-gateway")?.await?;
    let (mut send, mut recv) = conn.open_bi().await?;
    let mut hello = encode_frame(&ClientMsg::Hello { version: PROTOCOL_VERSION, name: format!("load-{}", plan.index), token: None });
    hello.extend(encode_frame(&ClientMsg::Join { room: plan.room.clone() }));
    send.write_all(&hello).await?;
    // Drain the control stream (rosters, talker lists) so the gateway never sees us stall.
    let drain = tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok(Some(_)) = recv.read(&mut buf).await {}
    });

    let speech = &setup.speech;
    let frame = Duration::from_millis(u64::from(speech.frame_ms));
    let ticks_per_frame = (u64::from(speech.frame_ms) * 1000 / TICK_US) as u16;
    let mut tick = tokio::time::interval(frame);
    let start = Instant::now();
    let mut seq: u16 = 0;
    let mut ts: u16 = 0;
    let mut sent_last = false;
    // Talk 2-6 s, pause 2-8 s (so a room of several talkers is sometimes quiet).
    let mut turn_end = start + Duration::from_millis(2000 + rng.next_u64() % 4000);
    let mut talking = plan.talker && rng.next_u64() % 2 == 0;

    let mut seqs = Unwrapper::default();
    let mut tss = Unwrapper::default();
    let (mut first_seq, mut last_seq, mut received) = (None::<i64>, 0i64, 0u64);
    let mut best_offset: Option<f64> = None;
    let mut offsets: Vec<f64> = Vec::new();
    let mut seen_onset = 0u64;

    let sleep_leave = tokio::time::sleep_until(leave.into());
    tokio::pin!(sleep_leave);
    loop {
        tokio::select! {
            _ = &mut sleep_leave => break,
            d = conn.read_datagram() => {
                let Ok(d) = d else { break };
                let now = Instant::now();
                let Ok(p) = AudioPacket::decode(&d) else { continue };
                if p.header.marker {
                    let mut room = setup.room.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some((t, who, n)) = room.onset {
                        if who != plan.index && n != seen_onset && now.duration_since(t) <= ONSET_MATCH && t >= plan.window.0 {
                            seen_onset = n;
                            room.mouth_to_ear_ms.push(now.duration_since(t).as_secs_f64() * 1000.0);
                        }
                    }
                }
                if now < plan.window.0 || now > plan.window.1 {
                    continue;
                }
                let s = seqs.extend(p.header.seq);
                first_seq.get_or_insert(s);
                last_seq = last_seq.max(s);
                received += 1;
                let media_ms = tss.extend(p.header.ts) as f64 * TICK_US as f64 / 1000.0;
                let offset = now.duration_since(start).as_secs_f64() * 1000.0 - media_ms;
                best_offset = Some(best_offset.map_or(offset, |b: f64| b.min(offset)));
                offsets.push(offset);
            }
            _ = tick.tick(), if plan.talker => {
                let now = Instant::now();
                if now >= turn_end {
                    talking = !talking;
                    let ms = if talking { 2000 + rng.next_u64() % 4000 } else { 2000 + rng.next_u64() % 6000 };
                    turn_end = now + Duration::from_millis(ms);
                }
                let f = &speech.frames[*speech_pos];
                let mut sent = false;
                if talking {
                    *speech_pos = (*speech_pos + 1) % speech.frames.len();
                    if let Some(d) = &f.datagram {
                        let mut d = d.clone();
                        d[1..3].copy_from_slice(&seq.to_be_bytes());
                        d[3..5].copy_from_slice(&ts.to_be_bytes());
                        if sent_last { d[0] &= !0x04 } else { d[0] |= 0x04 }
                        seq = seq.wrapping_add(1);
                        if f.voice {
                            let mut room = setup.room.lock().unwrap_or_else(|e| e.into_inner());
                            let quiet = room.last_voice_sent.is_none_or(|t| now.duration_since(t) >= QUIET_BEFORE_ONSET);
                            if quiet {
                                room.onsets += 1;
                                room.onset = Some((now, plan.index, room.onsets));
                            }
                            room.last_voice_sent = Some(now);
                        }
                        let _ = conn.send_datagram(Bytes::from(d));
                        sent = true;
                    }
                }
                sent_last = sent;
                ts = ts.wrapping_add(ticks_per_frame);
            }
        }
    }
    let _ = send.write_all(&encode_frame(&ClientMsg::Leave)).await;
    let _ = send.finish();
    conn.close(quinn::VarInt::from_u32(0), b"load done");
    drain.abort();

    if let (Some(first), Some(best)) = (first_seq, best_offset) {
        report.received += received;
        report.expected += (last_seq - first + 1) as u64;
        report.lateness_ms.extend(offsets.iter().map(|o| (o - best) as f32));
    }
    Ok(())
}
