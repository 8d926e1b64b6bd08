"""Built-in examples: the scenarios the UI is made to check, one click each.

They double as a smoke test of the things rerankers get wrong: mixed scripts (Chinese query,
Japanese or English documents; Arabic right-to-left), code versus prose answers, and
authoritative sources versus advertising and forum chatter. Every candidate is one line
because the candidates box is "one per line".
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Example:
    """One scenario: what the user would paste, and the instruction preset that suits it."""

    label: str
    query: str
    candidates: tuple[str, ...]
    preset: str = "default"
    instruction: str = ""

    @property
    def candidates_text(self) -> str:
        return "\n".join(self.candidates)

    def row(self) -> list[str]:
        """The values for ``gr.Examples``: query, candidates, preset, custom instruction."""
        return [self.query, self.candidates_text, self.preset, self.instruction]


PANDAS_ENCODING = Example(
    label="pandas UnicodeDecodeError (中文 + English, code)",
    query="pandas read_csv 报错 UnicodeDecodeError: 'utf-8' codec can't decode byte 0xd5 怎么解决?",
    candidates=(
        "df = pd.read_csv('data.csv', encoding='gbk')  # Windows 导出的中文 CSV 通常是 GBK 编码，不是 UTF-8",
        "import chardet; enc = chardet.detect(open('data.csv', 'rb').read(100_000))['encoding']; "
        "df = pd.read_csv('data.csv', encoding=enc)",
        "df = pd.read_csv('data.csv', encoding_errors='replace')  # pandas >= 1.3: 无法解码的字节替换为 �，不再报错",
        "df = pd.read_excel('data.xlsx', sheet_name=0)  # 读取 Excel 文件的第一个工作表",
        "UnicodeDecodeError means the bytes were decoded with the wrong codec; find the file's real encoding.",
        "pip install --upgrade pandas 可以解决大多数安装问题。",
    ),
    preset="technical_accuracy",
)

DOCKER_MEMORY = Example(
    label="Docker 内存 (中文 query, 日本語 documents)",
    query="Docker 容器内存占用越来越高，怎么限制容器能用的内存?",
    candidates=(
        "docker run に --memory=512m を指定すると、コンテナが使えるメモリの上限を設定できます。"
        "上限を超えると OOM Killer がプロセスを終了させます。",
        "docker-compose.yml では deploy.resources.limits.memory でサービスごとのメモリ上限を指定できます。",
        "docker stats コマンドで、各コンテナのメモリ使用量をリアルタイムに確認できます。",
        "Dockerfile の FROM 命令は、ビルドのベースとなるイメージを指定します。",
        "東京の今日の天気は晴れ、最高気温は25度の予報です。",
    ),
    preset="step_by_step",
)

ARABIC_PDF = Example(
    label="استخراج النص من PDF (العربية, Python)",
    query="كيف أستخرج النص من ملف PDF باستخدام بايثون؟",
    candidates=(
        "from pypdf import PdfReader; text = '\\n'.join(p.extract_text() for p in PdfReader('file.pdf').pages)",
        "يمكنك استخدام مكتبة pdfplumber: with pdfplumber.open('file.pdf') as pdf: text = pdf.pages[0].extract_text()",
        "PyMuPDF is fast: import fitz; text = ''.join(page.get_text() for page in fitz.open('file.pdf'))",
        "ملفات PDF الممسوحة ضوئياً لا تحتوي على نص، لذا تحتاج إلى التعرف الضوئي على الحروف مثل pytesseract.",
        "لتحويل ملف Word إلى PDF استخدم مكتبة docx2pdf.",
        "القاهرة هي عاصمة جمهورية مصر العربية.",
    ),
    preset="technical_accuracy",
)

MERGE_SORTED = Example(
    label="Merge two sorted lists (code vs prose)",
    query="fastest way to merge two sorted lists in Python",
    candidates=(
        "list(heapq.merge(a, b))  # lazy O(n + m) merge of inputs that are already sorted",
        "sorted(a + b)  # simplest; Timsort spots the two sorted runs, so it is close to linear in practice",
        "Use two pointers: compare a[i] and b[j], append the smaller and advance it; "
        "when one list runs out, append the rest of the other. O(n + m) time.",
        "Python lists are dynamic arrays, so append is amortised O(1).",
        "To merge two dictionaries in Python 3.9+, write a | b.",
        "Merge sort splits a list in halves, sorts each half recursively and merges the results.",
    ),
    preset="default",
)

SOFTWARE_COPYRIGHT = Example(
    label="如何申请软件著作权? (policy / agency / forum)",
    query="如何申请软件著作权?",
    candidates=(
        "根据《计算机软件保护条例》和《计算机软件著作权登记办法》，著作权人可向中国版权保护中心申请登记，"
        "提交登记申请表、软件鉴别材料（源程序和文档）及身份证明文件。",
        "中国版权保护中心官网在线办理：注册账号 → 填写申请表 → 上传或邮寄材料 → 受理审查 → 发放登记证书。",
        "【某某知识产权代理】软著加急办理，最快 3 个工作日下证，全程代写材料，价格优惠，欢迎咨询！",
        "论坛网友：我去年自己申请的软著，材料按官网模板准备就行，前后等了两个月左右，没必要找代理。",
        "商标注册需要向国家知识产权局提交申请，审查周期约为 9 个月。",
        "Software copyright registration in China is handled by the Copyright Protection Center of China (CPCC).",
    ),
    preset="legal_compliance",
)

EXAMPLES: tuple[Example, ...] = (PANDAS_ENCODING, DOCKER_MEMORY, ARABIC_PDF, MERGE_SORTED, SOFTWARE_COPYRIGHT)
