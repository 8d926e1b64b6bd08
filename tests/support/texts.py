"""Test documents: several scripts, code, odd first characters and mixed lengths."""

QUERIES = [
    "服务器CPU使用率持续100%怎么办",
    "fastest way to merge two sorted lists in Python",
    "كيف أحول ملف PDF إلى نص في بايثون؟",
    "Dockerのメモリ制限はどう設定しますか",
]

DOCS = [
    "使用 top 命令找到占用CPU最高的进程，然后分析代码中的死循环。",
    "Paris is the capital of France.",
    "def merge(a, b):\n    import heapq\n    return list(heapq.merge(a, b))",
    "Dockerコンテナのメモリ使用量を制限するには --memory オプションを使います。",
    "استخدم مكتبة pypdf لاستخراج النص من ملف PDF في بايثون.",
    "123 numbers first, then words",
    "(parenthesis first) and a tail?",
    "  two leading spaces",
    "\nnewline first\n\n",
    "'s apostrophe start",
    "emoji 🚀 and mixed 中文 English 日本語 العربية",
    "pandas UnicodeDecodeError: 'utf-8' codec can't decode byte 0xb0 → 用 encoding='gbk' 读取 CSV。",
    "x",
    "A long document. " * 60 + "The conclusion is that heapq.merge is fastest.",
    "长文档。" * 150 + "结论：增加服务器。",
]
