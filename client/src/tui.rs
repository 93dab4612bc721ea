//! The terminal user interface (ratatui over crossterm): the room with
//! speaking indicators, raised hands and mute state; your microphone level
//! and talk mode; link quality; session events. Keys: `m` mute, `h` hand,
//! `t` voice activity ↔ push-to-talk, space (held) to talk, `g` give the
//! floor to the first raised hand (hosts), `q` leave.
//!
//! [`render`] is a pure function of [`View`], so tests draw it on ratatui's
//! `TestBackend`; [`run`] drives a real terminal next to the call.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lowband_core::wire::{HostAction, Role};
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Direction, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Gauge, List, ListItem, Paragraph};
use ratatui::Frame;
use tokio::sync::mpsc;

use crate::audio::process::{TalkMode, TalkState};
use crate::audio::AudioIo;
use crate::call::{run_call_controlled, CallCommand, CallControls, CallError, CallOptions, CallReport, CallUpdate};
use crate::status::CallStatus;

const EVENTS_KEPT: usize = 50;
/// Without key-release events, push-to-talk ends this long after the last
/// key repeat (terminals repeat a held key every ~30 ms after ~500 ms).
const PTT_RELEASE: Duration = Duration::from_millis(700);

/// Everything the screen shows.
#[derive(Debug, Clone, Default)]
pub struct View {
    pub title: String,
    pub status: CallStatus,
    pub events: VecDeque<String>,
    pub mic_db: f32,
    pub mic_open: bool,
    pub talk_mode: Option<TalkMode>,
    pub ptt_down: bool,
}

impl View {
    fn me_hand(&self) -> bool {
        let s = &self.status;
        s.you.and_then(|y| s.roster.iter().find(|e| e.id == y)).is_some_and(|e| e.hand.is_some())
    }

    fn is_host(&self) -> bool {
        let s = &self.status;
        s.you.and_then(|y| s.roster.iter().find(|e| e.id == y)).is_some_and(|e| e.role == Role::Host)
    }

    pub fn push_event(&mut self, line: String) {
        self.events.push_back(line);
        while self.events.len() > EVENTS_KEPT {
            self.events.pop_front();
        }
    }
}

/// The core's good/weak/bad, or that the call is finding its way back.
fn link_state(s: &CallStatus) -> &'static str {
    if s.reconnecting {
        "reconnecting"
    } else {
        s.link.quality.as_str()
    }
}

pub fn render(f: &mut Frame, v: &View) {
    let rows = Layout::default()
        .direction(Direction::Vertical)
        .constraints([Constraint::Min(6), Constraint::Length(3), Constraint::Length(8), Constraint::Length(1)])
        .split(f.area());
    let top = Layout::default().direction(Direction::Horizontal).constraints([Constraint::Percentage(58), Constraint::Percentage(42)]).split(rows[0]);

    let s = &v.status;
    let mut people: Vec<_> = s.roster.iter().collect();
    // Raised hands first, in the order raised; then everyone by id.
    people.sort_by_key(|e| (e.hand.is_none(), e.hand.unwrap_or(0), e.id));
    let items: Vec<ListItem> = people
        .iter()
        .map(|e| {
            let talking = s.talkers.contains(&e.id) || (Some(e.id) == s.you && v.mic_open && !s.muted);
            let mut spans = vec![Span::styled(if talking { "▶ " } else { "  " }, Style::default().fg(Color::Green))];
            spans.push(match e.hand {
                Some(_) => {
                    let pos = s.roster.iter().filter(|o| o.hand.is_some_and(|h| Some(h) <= e.hand)).count();
                    Span::styled(format!("✋{pos} "), Style::default().fg(Color::Yellow))
                }
                None => Span::raw("    "),
            });
            let mut name = Style::default();
            if talking {
                name = name.add_modifier(Modifier::BOLD);
            }
            spans.push(Span::styled(e.name.clone(), name));
            if Some(e.id) == s.you {
                spans.push(Span::raw(" (you)"));
            }
            match e.role {
                Role::Host => spans.push(Span::styled(" host", Style::default().fg(Color::Cyan))),
                Role::Presenter => spans.push(Span::styled(" presenter", Style::default().fg(Color::Cyan))),
                Role::Participant => {}
            }
            if e.muted {
                spans.push(Span::styled(" [muted]", Style::default().fg(Color::Red)));
            }
            if talking {
                spans.push(Span::styled(" speaking", Style::default().fg(Color::Green)));
            }
            ListItem::new(Line::from(spans))
        })
        .collect();
    let room_title = format!(" Room: {} {}", s.roster.len(), if s.locked { "· locked " } else { "" });
    f.render_widget(List::new(items).block(Block::default().borders(Borders::ALL).title(room_title)), top[0]);

    let link = vec![
        Line::from(vec![Span::raw("quality  "), Span::styled(link_state(s), Style::default().add_modifier(Modifier::BOLD))]),
        Line::from(format!("profile  {}{}", s.link.profile, if s.link.receive_only { " · receive only" } else { "" })),
        Line::from(format!("RTT      {:.0} ms", s.rtt_ms)),
        Line::from(format!("loss     up {:.1} %  down {:.1} %", s.loss_up_pct, s.concealed_pct)),
        Line::from(format!("kbit/s   up {:.1}  down {:.1}", s.up_kbps, s.down_kbps)),
        Line::from(format!("in call  {}:{:02}", s.seconds as u64 / 60, s.seconds as u64 % 60)),
    ];
    f.render_widget(Paragraph::new(link).block(Block::default().borders(Borders::ALL).title(" Link ")), top[1]);

    let mode = match v.talk_mode {
        Some(TalkMode::Voice) => "voice activity",
        Some(TalkMode::PushToTalk) if v.ptt_down => "push-to-talk: TALKING",
        Some(TalkMode::PushToTalk) => "push-to-talk: hold space",
        None => "file input",
    };
    let state = if s.muted {
        "MUTED".to_string()
    } else if v.mic_open {
        "sending".into()
    } else {
        "quiet".into()
    };
    let ratio = ((v.mic_db + 60.0) / 60.0).clamp(0.0, 1.0) as f64;
    let label = format!("{:>4.0} dBFS · {mode} · {state}{}", v.mic_db.max(-99.0), if v.me_hand() { " · hand raised" } else { "" });
    let gauge = Gauge::default()
        .block(Block::default().borders(Borders::ALL).title(" Your microphone "))
        .gauge_style(Style::default().fg(if s.muted { Color::Red } else { Color::Green }))
        .ratio(ratio)
        .label(label);
    f.render_widget(gauge, rows[1]);

    let n = rows[2].height.saturating_sub(2) as usize;
    let ev: Vec<ListItem> = v.events.iter().rev().take(n).rev().map(|e| ListItem::new(e.clone())).collect();
    f.render_widget(List::new(ev).block(Block::default().borders(Borders::ALL).title(" Events ")), rows[2]);

    let host = if v.is_host() { "  g floor to first hand" } else { "" };
    let help = format!(" {}  m mute  h hand  t talk mode  space talk  q leave{host}", v.title);
    f.render_widget(Paragraph::new(help).style(Style::default().add_modifier(Modifier::REVERSED)), rows[3]);
}

/// Keys from a blocking reader thread (crossterm's reader is synchronous).
fn spawn_key_reader(tx: mpsc::UnboundedSender<Event>) {
    std::thread::Builder::new()
        .name("lowband-keys".into())
        .spawn(move || {
            while !tx.is_closed() {
                if event::poll(Duration::from_millis(100)).unwrap_or(false) {
                    match event::read() {
                        Ok(e) => {
                            if tx.send(e).is_err() {
                                return;
                            }
                        }
                        Err(_) => return,
                    }
                }
            }
        })
        .ok();
}

/// Runs a call with the terminal UI until the user leaves or the call ends.
/// `start` is sent first (e.g. start muted); `talk` is absent without voice processing.
pub async fn run(
    opts: &CallOptions,
    audio: &mut (dyn AudioIo + Send),
    talk: Option<Arc<TalkState>>,
    stop: impl Future<Output = ()>,
    start: Vec<CallCommand>,
) -> Result<CallReport, CallError> {
    let (controls, commands, mut updates) = CallControls::pair();
    for c in start {
        let _ = commands.send(c);
    }
    let (controls, mut status) = controls.with_status();
    let mut terminal = ratatui::init();
    let release_events = ratatui::crossterm::terminal::supports_keyboard_enhancement().unwrap_or(false);
    if release_events {
        use ratatui::crossterm::event::{KeyboardEnhancementFlags, PushKeyboardEnhancementFlags};
        let _ = ratatui::crossterm::execute!(std::io::stdout(), PushKeyboardEnhancementFlags(KeyboardEnhancementFlags::REPORT_EVENT_TYPES));
    }
    let (key_tx, mut keys) = mpsc::unbounded_channel();
    spawn_key_reader(key_tx);

    let mut view = View { title: format!("{} @ {}", opts.room, opts.gateway), talk_mode: talk.as_ref().map(|t| t.mode()), ..View::default() };
    let started = Instant::now();
    let ui = async {
        let mut redraw = tokio::time::interval(Duration::from_millis(100));
        let mut last_ptt: Option<Instant> = None;
        let mut last_meter = Instant::now();
        let mut open_until = Instant::now();
        loop {
            tokio::select! {
                u = updates.recv() => match u {
                    Some(CallUpdate { text, .. }) => {
                        let t = started.elapsed().as_secs();
                        view.push_event(format!("{:02}:{:02} {text}", t / 60, t % 60));
                    }
                    None => break,
                },
                Ok(()) = status.changed() => view.status = status.borrow().clone(),
                Some(ev) = keys.recv() => {
                    let Event::Key(k) = ev else { continue };
                    let talk = talk.as_deref();
                    if k.kind == KeyEventKind::Release {
                        if k.code == KeyCode::Char(' ') {
                            last_ptt = None;
                        }
                        continue;
                    }
                    match k.code {
                        KeyCode::Char('q') | KeyCode::Esc => { let _ = commands.send(CallCommand::Leave); }
                        KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => { let _ = commands.send(CallCommand::Leave); }
                        KeyCode::Char('m') => { let _ = commands.send(CallCommand::SetMuted(!view.status.muted)); }
                        KeyCode::Char('h') => { let _ = commands.send(CallCommand::RaiseHand(!view.me_hand())); }
                        KeyCode::Char('g') => {
                            let first = view.status.roster.iter().filter(|e| e.hand.is_some()).min_by_key(|e| e.hand).map(|e| e.id);
                            if let Some(id) = first {
                                let _ = commands.send(CallCommand::Host(HostAction::GrantFloor { id }));
                            }
                        }
                        KeyCode::Char('t') => if let Some(t) = talk {
                            t.set_mode(if t.mode() == TalkMode::Voice { TalkMode::PushToTalk } else { TalkMode::Voice });
                            t.set_key(false);
                        },
                        KeyCode::Char(' ') => last_ptt = Some(Instant::now()),
                        _ => {}
                    }
                },
                _ = redraw.tick() => {}
            }
            if let Some(t) = talk.as_deref() {
                let down = last_ptt.is_some_and(|p| release_events || p.elapsed() < PTT_RELEASE);
                t.set_key(down);
                view.ptt_down = down;
                view.talk_mode = Some(t.mode());
                // Peak hold: a meter that falls 15 dB/s reads better than raw 20 ms levels.
                view.mic_db = t.level_db().max(view.mic_db - 1.5 * (last_meter.elapsed().as_secs_f32() * 10.0));
                last_meter = Instant::now();
                if t.speaking() {
                    open_until = Instant::now() + Duration::from_millis(300);
                }
                view.mic_open = Instant::now() < open_until;
            }
            let _ = terminal.draw(|f| render(f, &view));
        }
    };
    let (report, ()) = tokio::join!(run_call_controlled(opts, audio, stop, Some(controls)), ui);
    if release_events {
        let _ = ratatui::crossterm::execute!(std::io::stdout(), ratatui::crossterm::event::PopKeyboardEnhancementFlags);
    }
    ratatui::restore();
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use lowband_core::wire::RosterEntry;
    use lowband_core::client::LinkStatus;
    use lowband_core::feedback::LinkQuality;
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    fn entry(id: u32, name: &str, hand: Option<u32>, muted: bool, role: Role) -> RosterEntry {
        RosterEntry { id, name: name.into(), role, muted, hand }
    }

    fn screen(v: &View) -> String {
        let mut t = Terminal::new(TestBackend::new(100, 22)).unwrap();
        t.draw(|f| render(f, v)).unwrap();
        let b = t.backend().buffer().clone();
        let text: String = (0..b.area.height).map(|y| (0..b.area.width).map(|x| b[(x, y)].symbol().to_string()).collect::<String>() + "\n").collect();
        // The buffer pads a wide character with a blank cell; a terminal does not.
        text.replace("✋ ", "✋")
    }

    #[test]
    fn the_screen_shows_speakers_hands_mutes_and_link_figures() {
        let mut v = View { title: "echo-hiv @ hub:4433".into(), talk_mode: Some(TalkMode::Voice), mic_db: -30.0, ..View::default() };
        v.status = CallStatus {
            you: Some(2),
            roster: vec![
                entry(1, "Dr. Ama", None, false, Role::Host),
                entry(2, "Clinic 7", None, false, Role::Participant),
                entry(3, "Clinic 9", Some(4), true, Role::Participant),
                entry(4, "Clinic 3", Some(2), false, Role::Participant),
            ],
            talkers: vec![1],
            rtt_ms: 412.0,
            up_kbps: 14.2,
            down_kbps: 16.8,
            loss_up_pct: 1.5,
            concealed_pct: 0.5,
            ..CallStatus::default()
        };
        v.push_event("00:03 Clinic 9 raised a hand".into());
        let s = screen(&v);
        assert!(s.contains("▶     Dr. Ama host speaking"), "{s}");
        assert!(s.contains("✋1 Clinic 3"), "{s}");
        assert!(s.contains("✋2 Clinic 9 [muted]"), "{s}");
        assert!(s.contains("Clinic 7 (you)"), "{s}");
        assert!(s.contains("RTT      412 ms"), "{s}");
        assert!(s.contains("up 1.5 %  down 0.5 %"), "{s}");
        assert!(s.contains("up 14.2  down 16.8"), "{s}");
        assert!(s.contains("quality  good"), "{s}");
        assert!(s.contains("voice activity"), "{s}");
        assert!(s.contains("Clinic 9 raised a hand"), "{s}");
        // Hands come first, in the order raised.
        assert!(s.find("Clinic 3").unwrap() < s.find("Clinic 9").unwrap());
        assert!(s.find("Clinic 9").unwrap() < s.find("Dr. Ama").unwrap());
    }

    #[test]
    fn the_link_box_shows_the_core_s_quality_and_profile_and_reconnecting() {
        let mut v = View::default();
        v.status.link = LinkStatus { quality: LinkQuality::Weak, profile: "edge".into(), receive_only: true, ..LinkStatus::default() };
        let s = screen(&v);
        assert!(s.contains("quality  weak"), "{s}");
        assert!(s.contains("profile  edge · receive only"), "{s}");
        v.status.reconnecting = true;
        assert!(screen(&v).contains("quality  reconnecting"));
    }
}
