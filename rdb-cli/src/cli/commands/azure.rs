//! `rdbkit upload` and `rdbkit import`.

use std::path::Path;

use rdb_cli::azure::import::ImportArgs;
use rdb_cli::azure::upload::{Source, UploadArgs};
use rdb_cli::Failure;

use crate::cli::input::Input;
use crate::cli::Context;

pub fn upload(args: &UploadArgs, _cx: &Context) -> Result<(), Failure> {
    let inputs = args
        .files
        .iter()
        .map(|f| Input::open_as_is(f))
        .collect::<Result<Vec<_>, _>>()?;
    let sources: Vec<Source<'_>> = args
        .files
        .iter()
        .zip(&inputs)
        .map(|(path, input)| Source {
            path,
            data: input.bytes(),
        })
        .collect();
    let mut out = std::io::stdout().lock();
    rdb_cli::azure::upload::run(args, &sources, &mut out, &mut std::io::stderr()).map(drop)
}

pub fn import(args: &ImportArgs, _cx: &Context) -> Result<(), Failure> {
    let inputs = args
        .files
        .iter()
        .map(|f| Input::open_as_is(f))
        .collect::<Result<Vec<_>, _>>()?;
    let files: Vec<(&Path, &[u8])> = args
        .files
        .iter()
        .zip(&inputs)
        .map(|(p, i)| (p.as_path(), i.bytes()))
        .collect();
    let mut out = std::io::stdout().lock();
    rdb_cli::azure::import::run(args, &files, &mut out, &mut std::io::stderr())
}
