//! The Sluice application: what users run rather than build on. The e-commerce job
//! ([`shop`]), declarative pipelines ([`pipeline`]), data generators ([`datagen`]) and a JSON
//! producer ([`producer`]) for the examples' input, how they reach secured clusters
//! ([`security`]), the embedded Kafka and CQL services the
//! zero-install demo runs on ([`embedded`]), setting values they share ([`settings`]), and the
//! client of a running job's console ([`console_client`]).
//! The `sluice` command, the examples, the benchmarks and the end-to-end tests are built on
//! it. Jobs of your own need only the library, the `sluice` crate.

pub mod console_client;
pub mod datagen;
pub mod embedded;
pub mod pipeline;
pub mod producer;
pub mod scale_out;
pub mod security;
pub mod settings;
pub mod shop;
