"""The error kinds of LLM requests, the same whatever API a host speaks.

  llm_unavailable   the server cannot be reached (connection refused, DNS, host down)
  llm_disconnected  the connection broke before an answer came
  llm_busy          HTTP 503 or 429: the server's queue is full (OLLAMA_MAX_QUEUE), it is
                    loading, or a rate limit stands in front of it
  llm_timeout       no answer within request_timeout_s (a stalled or overloaded server)
  llm_model_missing HTTP 404: the model is not pulled / not served (or the URL is wrong)
  llm_unauthorized  HTTP 401/403: the server (or a proxy) wants credentials
  llm_bad_response  the server's HTTP answer was not what the API promises (not JSON)
  llm_error         any other server error (HTTP 5xx: the runner crashed, is restarting ...)
  llm_context_too_long  the prompt does not fit the context (the request's own problem)
  llm_bad_request   any other HTTP 4xx (the request's own problem)

All but the last two are the server's state and pause all LLM work (ytpiped.mining.outage).

The server answered, but the answer cannot be used even after the one repair request
(ytpiped.mining.runner): the window (or evaluation) fails with

  llm_invalid_json  not JSON, or JSON the schema rejects
  llm_reply_cut     cut off at mine.answer_tokens (finish_reason / done_reason "length")
                    before its JSON ended, also when asked again for a shorter answer; a
                    window is then mined as two halves (shorter answers) before it fails
"""

from __future__ import annotations

KIND_UNAVAILABLE = "llm_unavailable"
KIND_BUSY = "llm_busy"
KIND_TIMEOUT = "llm_timeout"
KIND_DISCONNECTED = "llm_disconnected"
KIND_MODEL_MISSING = "llm_model_missing"
KIND_UNAUTHORIZED = "llm_unauthorized"
KIND_BAD_RESPONSE = "llm_bad_response"
KIND_SERVER_ERROR = "llm_error"
KIND_CONTEXT = "llm_context_too_long"
KIND_BAD_REQUEST = "llm_bad_request"
KIND_INVALID = "llm_invalid_json"
KIND_CUT = "llm_reply_cut"
OVERLOAD_KINDS = frozenset({KIND_BUSY, KIND_TIMEOUT})
#: how servers word "the prompt is longer than the context" (Ollama, llama.cpp, vLLM ...)
CONTEXT_WORDS = ("context length", "context size", "context window", "maximum context",
                 "exceed_context_size")


class LLMError(Exception):
    """`own`: the server failed this request while it answered others, so the request
    (its prompt) is the problem, whatever the kind says."""

    def __init__(self, message: str, *, kind: str, host: str | None = None,
                 own: bool = False) -> None:
        super().__init__(message)
        self.kind = kind
        self.host = host
        self.own = own
