"""Calibration text for GPTQ: a few thousand tokens of the kinds of text a Qwen coder/reasoning model sees (prose,
code, math with LaTeX, chat turns, JSON, some Chinese). Written for qwq; no benchmark or evaluation text is reused,
so accuracy measured on other text is not flattered by it.
"""

from __future__ import annotations

CALIBRATION_TEXTS = (
    """A hash table stores values in an array of buckets. To insert a key, we compute a hash of the key, reduce it
modulo the number of buckets, and place the entry there. Two keys may land in the same bucket; this is a collision.
Separate chaining keeps a small list in every bucket, while open addressing probes other buckets until it finds a
free one. When the table fills up, lookups slow down, so most implementations grow the array once the load factor
passes a threshold such as 0.75 and re-insert every entry. The amortised cost of an insertion stays constant because
each resize doubles the capacity: the total work of all resizes is proportional to the number of insertions.""",

    '''import heapq
from dataclasses import dataclass, field


@dataclass(order=True)
class Job:
    priority: int
    name: str = field(compare=False)


def schedule(jobs: list[Job], workers: int) -> dict[str, int]:
    """Assign each job to the worker that becomes free first; returns job name -> worker index."""
    free_at = [(0, w) for w in range(workers)]
    heapq.heapify(free_at)
    assignment = {}
    for job in sorted(jobs):
        time, worker = heapq.heappop(free_at)
        assignment[job.name] = worker
        heapq.heappush(free_at, (time + job.priority, worker))
    return assignment


if __name__ == "__main__":
    print(schedule([Job(3, "build"), Job(1, "lint"), Job(2, "test")], workers=2))
''',

    r"""Problem: Find all real numbers $x$ such that $\sqrt{x + 7} = x - 5$.

Solution: Both sides must be non-negative, so $x \ge 5$. Squaring gives $x + 7 = x^2 - 10x + 25$, that is
$x^2 - 11x + 18 = 0$, which factors as $(x - 2)(x - 9) = 0$. The root $x = 2$ violates $x \ge 5$, so it is
extraneous. Checking $x = 9$: $\sqrt{16} = 4 = 9 - 5$. Therefore the only solution is $\boxed{9}$.

Next, consider the sum $S = \sum_{k=1}^{n} k^3$. By induction one shows $S = \left(\frac{n(n+1)}{2}\right)^2$:
for $n = 1$ both sides equal 1, and adding $(n+1)^3$ to $\frac{n^2(n+1)^2}{4}$ gives
$\frac{(n+1)^2 (n^2 + 4n + 4)}{4} = \frac{(n+1)^2(n+2)^2}{4}$, as required.""",

    """<|im_start|>system
You are a helpful assistant.<|im_end|>
<|im_start|>user
My train leaves at 14:35 and the trip takes 2 hours 50 minutes. When do I arrive?<|im_end|>
<|im_start|>assistant
<think>
Start at 14:35. Adding 2 hours gives 16:35, and 50 more minutes gives 17:25.
</think>

You arrive at 17:25.<|im_end|>
<|im_start|>user
Write a SQL query that counts orders per customer in 2024.<|im_end|>
<|im_start|>assistant
SELECT customer_id, COUNT(*) AS orders
FROM orders
WHERE order_date >= '2024-01-01' AND order_date < '2025-01-01'
GROUP BY customer_id
ORDER BY orders DESC;<|im_end|>""",

    """{"id": 4172, "status": "shipped", "items": [{"sku": "A-19", "qty": 2, "price": 12.5},
{"sku": "C-07", "qty": 1, "price": 99.0}], "address": {"city": "Lyon", "zip": "69003"}, "notes": null}
Error: connection refused (errno 111) while contacting http://localhost:8080/api/v1/health; retrying in 5s.
2025-03-14T09:26:53Z INFO worker[3] processed 1,024 events in 0.82s (1,249 events/s)""",

    """机器学习模型在训练时会最小化损失函数。梯度下降每一步都沿着负梯度方向更新参数，学习率决定步长的大小。
如果学习率太大，训练可能发散；如果太小，收敛会非常缓慢。实际中常用带动量的优化器，并配合学习率预热和衰减。""",

    """The committee met on Tuesday to review the budget. Revenue grew by eight percent compared with the previous
year, mostly from the new subscription plan, while costs rose by only three percent. Several members argued that
the surplus should fund the delayed maintenance of the east building; others preferred to keep a reserve for the
uncertain months ahead. After a long discussion they agreed to spend half now and revisit the question in autumn.""",

    '''fn parse_pairs(input: &str) -> Result<Vec<(String, i64)>, String> {
    input
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let (key, value) = line.split_once('=').ok_or(format!("missing '=' in {line:?}"))?;
            let number = value.trim().parse::<i64>().map_err(|e| e.to_string())?;
            Ok((key.trim().to_string(), number))
        })
        .collect()
}''',
)


def calibration_token_lists(tokenizer, max_tokens: int = 1024, sequence_length: int = 256) -> list[list[int]]:
    """The calibration texts tokenized and cut into sequences (at most `max_tokens` tokens in all)."""
    ids: list[int] = []
    for text in CALIBRATION_TEXTS:
        ids.extend(tokenizer.encode(text + "\n\n"))
    ids = ids[:max_tokens]
    return [ids[i:i + sequence_length] for i in range(0, len(ids), sequence_length) if len(ids[i:i + sequence_length]) > 8]
