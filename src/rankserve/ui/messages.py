"""Every message the UI shows a person, in Chinese and English, in one place.

The UI never shows a stack trace: each failure it can foresee becomes a
:class:`FriendlyError` carrying a short bilingual sentence that says what to do next, and a
``kind`` the page exposes as ``data-kind`` so tests (and CSS) can tell the cases apart.
"""

from __future__ import annotations


class FriendlyError(Exception):
    """A failure explained for a person: ``message`` is shown as is, ``kind`` names the case."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def empty_query() -> FriendlyError:
    return FriendlyError("empty_query", "请输入查询。 Please enter a query.")


def no_candidates() -> FriendlyError:
    return FriendlyError(
        "no_candidates",
        "请至少输入一个候选文本（每行一个），或上传 .txt / .jsonl 文件。 "
        "Please enter at least one candidate (one per line) or upload a .txt / .jsonl file.",
    )


def bad_file(detail: str) -> FriendlyError:
    return FriendlyError("bad_file", f"无法读取上传的文件：{detail} Cannot read the uploaded file: {detail}")


def unreachable(url: str) -> FriendlyError:
    return FriendlyError(
        "unreachable",
        f"无法连接到服务器 {url}，请确认 `rankserve serve` 正在运行。 "
        f"Cannot reach the RankServe server at {url}: is `rankserve serve` running there?",
    )


def client_timeout(url: str, seconds: float) -> FriendlyError:
    return FriendlyError(
        "timeout",
        f"服务器 {url} 在 {seconds:g} 秒内没有响应，请减少或缩短候选文本后重试。 "
        f"No answer from {url} within {seconds:g} s: try fewer or shorter candidates.",
    )


def needs_key(had_key: bool) -> FriendlyError:
    if had_key:
        return FriendlyError(
            "unauthorized", "API 密钥无效，请检查后重试。 The API key was rejected: check it and try again."
        )
    return FriendlyError(
        "unauthorized",
        "此服务器需要 API 密钥，请在「API 密钥 API key」一栏填写。 "
        "This server requires an API key: enter it in the API key field.",
    )


def too_many_documents(limit: int | None, sent: int) -> FriendlyError:
    if limit is None:
        return FriendlyError(
            "too_large",
            f"请求太大（{sent} 个候选），请减少候选数量或长度。 "
            f"The request is too large ({sent} candidates): send fewer or shorter ones.",
        )
    return FriendlyError(
        "too_many_documents",
        f"候选文本太多：服务器每次最多接受 {limit} 个，本次 {sent} 个。 "
        f"Too many documents: the server accepts at most {limit} per request (you sent {sent}).",
    )


def busy(retry_after: str | None) -> FriendlyError:
    wait = retry_after or "a few"
    return FriendlyError(
        "busy", f"服务器繁忙，请 {wait} 秒后重试。 The server is busy: please retry in {wait} seconds."
    )


def loading() -> FriendlyError:
    return FriendlyError(
        "loading", "模型仍在加载，请稍后重试。 The model is still loading: please retry in a few seconds."
    )


def server_timeout(detail: str) -> FriendlyError:
    return FriendlyError(
        "server_timeout",
        f"服务器处理超时，请减少或缩短候选文本。 The server timed out ({detail}): try fewer or shorter candidates.",
    )


def invalid_request(detail: str) -> FriendlyError:
    return FriendlyError("invalid_request", f"请求无效：{detail} Invalid request: {detail}")


def server_error(status: int, detail: str) -> FriendlyError:
    return FriendlyError(
        "server_error", f"服务器出错 (HTTP {status})：{detail} The server failed (HTTP {status}): {detail}"
    )


def not_rankserve(url: str, status: int) -> FriendlyError:
    return FriendlyError(
        "not_rankserve",
        f"{url} 的响应不是 RankServe API (HTTP {status})，请检查地址。 "
        f"{url} did not answer like a RankServe server (HTTP {status}): check the URL.",
    )


def unexpected(exc: BaseException) -> FriendlyError:
    return FriendlyError(
        "unexpected",
        f"意外错误 Unexpected error: {type(exc).__name__}: {exc}. 详情见服务器日志 Details are in the server log.",
    )
