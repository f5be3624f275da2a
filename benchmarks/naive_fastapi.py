"""The naive FastAPI baseline: pydantic parses the whole body, re-serialises it, send_and_wait per request.

No ``from __future__ import annotations`` here: FastAPI reads the handler's annotations at runtime.
"""

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict


class SparkPostEvent(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    event_id: str | None = None
    rcpt_to: str | None = None
    timestamp: str | int | None = None
    campaign_id: str | None = None
    message_id: str | None = None
    rcpt_meta: dict[str, Any] | None = None
    rcpt_tags: list[str] | None = None


class Msys(BaseModel):
    message_event: SparkPostEvent | None = None
    track_event: SparkPostEvent | None = None
    gen_event: SparkPostEvent | None = None
    unsubscribe_event: SparkPostEvent | None = None
    relay_event: SparkPostEvent | None = None


class Item(BaseModel):
    msys: Msys


def serve(port: int, bootstrap: str, topic: str) -> None:
    state: dict[str, AIOKafkaProducer] = {}

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
        await producer.start()
        state["producer"] = producer
        yield
        await producer.stop()

    app = FastAPI(lifespan=lifespan)

    @app.post("/hooks/{source_id}")
    async def hook(source_id: str, batch: list[Item]) -> dict[str, str]:
        value = json.dumps([item.model_dump(exclude_none=True) for item in batch]).encode()
        await state["producer"].send_and_wait(topic, value)
        return {"status": "accepted"}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, backlog=1024)
