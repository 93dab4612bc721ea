//! Helpers for the session tests: headless spokes a test can steer (mute,
//! hands, host actions) and watch, over real QUIC on loopback.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use lowband_client::audio::wav::{read_16k_mono, WavAudio};
use lowband_client::{run_call_controlled, CallCommand, CallControls, CallError, CallOptions, CallReport, CallUpdate};
use lowband_codec_tests::data::{read_speech, shared_file};
use lowband_core::wire::RosterEntry;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub const RATE: usize = 16_000;

pub fn at(secs: f64) -> usize {
    (secs * RATE as f64) as usize
}

pub fn speech(file: &str) -> Vec<i16> {
    read_speech(&shared_file(&format!("speech/{file}")).unwrap()).unwrap()
}

pub struct Spoke {
    pub name: String,
    pub commands: mpsc::UnboundedSender<CallCommand>,
    pub updates: mpsc::UnboundedReceiver<CallUpdate>,
    pub call: JoinHandle<Result<CallReport, CallError>>,
    /// What this spoke heard, once the call is over.
    pub heard: PathBuf,
    /// The latest state seen through `updates`.
    pub last: Option<CallUpdate>,
}

pub struct Join<'a> {
    pub gateway: &'a str,
    pub fingerprint: &'a str,
    pub dir: &'a Path,
    pub room: &'a str,
    pub name: &'a str,
    pub token: Option<String>,
    pub speech: Vec<i16>,
    pub speak_at: f64,
    pub stay: f64,
}

pub fn join(j: Join<'_>) -> Spoke {
    let heard = j.dir.join(format!("{}.wav", j.name));
    let opts = CallOptions {
        gateway: j.gateway.to_string(),
        room: j.room.to_string(),
        name: j.name.to_string(),
        token: j.token,
        fingerprint: Some(j.fingerprint.to_string()),
        config_dir: j.dir.join(format!("{}-config", j.name)),
        duration: Some(Duration::from_secs_f64(j.stay)),
    };
    let (controls, commands, updates) = CallControls::pair();
    let (speech, speak_at, out) = (j.speech, Duration::from_secs_f64(j.speak_at), heard.clone());
    let call = tokio::spawn(async move {
        let mut audio = WavAudio::new(speech, speak_at, Some(&out)).unwrap();
        run_call_controlled(&opts, &mut audio, std::future::pending(), Some(controls)).await
    });
    Spoke { name: j.name.to_string(), commands, updates, call, heard, last: None }
}

impl Spoke {
    /// Waits (up to 5 s) for an update that satisfies `pred`; panics naming what was awaited.
    pub async fn until(&mut self, what: &str, pred: impl Fn(&CallUpdate) -> bool) -> CallUpdate {
        if let Some(u) = self.last.as_ref().filter(|u| pred(u)) {
            return u.clone();
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            match tokio::time::timeout_at(deadline, self.updates.recv()).await {
                Ok(Some(u)) => {
                    self.last = Some(u.clone());
                    if pred(&u) {
                        return u;
                    }
                }
                Ok(None) => panic!("{}: call ended while waiting for {what}; last: {:?}", self.name, self.last),
                Err(_) => panic!("{}: timed out waiting for {what}; last: {:?}", self.name, self.last),
            }
        }
    }

    pub async fn joined(&mut self) -> u32 {
        self.until("joining", |u| u.you.is_some()).await.you.unwrap()
    }

    pub fn send(&self, c: CallCommand) {
        self.commands.send(c).unwrap();
    }

    pub async fn finish(self) -> (Result<CallReport, CallError>, Vec<i16>) {
        let r = self.call.await.unwrap();
        let heard = read_16k_mono(&self.heard).unwrap_or_default();
        (r, heard)
    }
}

pub fn entry<'a>(u: &'a CallUpdate, name: &str) -> Option<&'a RosterEntry> {
    u.roster.iter().find(|e| e.name == name)
}
