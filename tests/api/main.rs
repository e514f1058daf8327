//! Integration tests: a real server on port 0, real HTTP and WebSocket clients.
//! One binary for all of them, so that it links once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

mod architecture;
mod balancer;
mod beers;
mod browser;
mod classify;
mod contract;
mod crash;
mod durable;
mod flags;
mod hostile;
mod kegcop;
mod metrics;
mod mqtt;
mod openapi;
mod pages;
mod portable;
mod postgres;
mod readme;
mod receiver;
mod replicas;
mod sales;
mod security;
mod shutdown;
mod socket;
mod space;
mod webhooks;
