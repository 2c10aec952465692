"""The math verifier's table: (prediction, gold, expected, kind). Used by test_math_table.py and by
benchmarks/bench_verify.py (precision / recall of ours against raw math-verify).

kind: "equiv" (plain equivalence), "tricky" (equivalent in a different form), "different" (plainly wrong),
"near_miss" (wrong, but close enough to fool a tolerance or a careless comparison).
"""

EQUIV = [
    # integers, signs, thousands separators
    ("42", "42"), ("-7", "-7"), ("1,000", "1000"), ("1000", "1{,}000"), ("+5", "5"), ("007", "7"),
    # decimals
    ("0.5", "0.5"), ("2.50", "2.5"), ("-0.25", "-0.25"), (".75", "0.75"),
    # fractions
    ("\\frac{3}{4}", "\\frac{3}{4}"), ("\\dfrac{3}{4}", "\\frac{3}{4}"), ("3/4", "\\frac{3}{4}"),
    ("-\\frac{1}{3}", "-\\frac{1}{3}"), ("\\tfrac{5}{2}", "\\frac{5}{2}"),
    # radicals
    ("2\\sqrt{3}", "2\\sqrt{3}"), ("\\sqrt{2}", "\\sqrt{2}"), ("\\frac{\\sqrt{3}}{2}", "\\frac{\\sqrt{3}}{2}"),
    ("\\sqrt[3]{2}", "\\sqrt[3]{2}"),
    # pi and e
    ("2\\pi", "2\\pi"), ("\\frac{\\pi}{4}", "\\frac{\\pi}{4}"), ("e^2", "e^{2}"), ("\\pi r^2", "\\pi r^2"),
    # percentages, units, money, degrees
    ("25\\%", "25\\%"), ("25", "25\\%"), ("12 \\text{ cm}", "12"), ("5\\text{ inches}", "5"), ("\\$18.90", "18.90"),
    ("30^\\circ", "30"), ("45^{\\circ}", "45^\\circ"), ("90", "90^\\circ"),
    # intervals, sets, tuples
    ("[2, 5)", "[2,5)"), ("(-\\infty, 3]", "(-\\infty,3]"), ("\\{1, 2, 3\\}", "\\{1,2,3\\}"),
    ("(3, \\frac{\\pi}{2})", "\\left( 3, \\frac{\\pi}{2} \\right)"), ("(1, -2)", "(1,-2)"),
    ("(-\\infty, 2) \\cup (3, \\infty)", "(-\\infty, 2) \\cup (3, \\infty)"),
    # matrices
    ("\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}", "\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}"),
    ("\\begin{pmatrix} 5 \\\\ -1 \\end{pmatrix}", "\\begin{pmatrix} 5 \\\\ -1 \\end{pmatrix}"),
    # equations and expressions
    ("y = 2x + 3", "y=2x+3"), ("x^2 + 1", "x^2+1"), ("x = 4", "4"), ("4", "x = 4"),
    # text answers
    ("\\text{Evelyn}", "\\text{Evelyn}"), ("Evelyn", "\\text{Evelyn}"), ("\\text{(C)}", "\\text{(C)}"),
    ("C", "\\text{(C)}"), ("\\text{even}", "\\text{even}"),
    # others
    ("10110_2", "10110_2"), ("\\infty", "\\infty"), ("3+4i", "3+4i"), ("0", "0"), ("1.5 \\times 10^{3}", "1500"),
    ("\\frac{7}{2}", "3.5"), ("\\left[ 0, 1 \\right]", "[0,1]"), ("(2,3)", "(2, 3)"), ("x = 2, y = 3", "x=2,y=3"),
]

TRICKY = [
    ("0.5", "\\frac{1}{2}"), ("\\frac{2}{4}", "\\frac{1}{2}"), ("\\frac{1}{\\sqrt{2}}", "\\frac{\\sqrt{2}}{2}"),
    ("\\sqrt{18}", "3\\sqrt{2}"), ("\\sqrt{8}", "2\\sqrt{2}"), ("4\\frac{1}{2}", "\\frac{9}{2}"),
    ("\\frac{e-1}{e}", "1-\\frac{1}{e}"), ("1 - e^{-1}", "1-\\frac{1}{e}"), ("(x+1)^2", "x^2+2x+1"),
    ("2x - y + 3 = 0", "y=2x+3"), ("y = 3 + 2x", "y=2x+3"), ("\\{3, 2, 1\\}", "\\{1,2,3\\}"), ("2, 1", "1, 2"),
    ("(3, \\infty) \\cup (-\\infty, 2)", "(-\\infty, 2) \\cup (3, \\infty)"), ("0.1", "10\\%"),
    ("75\\%", "\\frac{3}{4}"), ("\\log_2 64", "6"), ("0.333333", "\\frac{1}{3}"), ("0.6667", "\\frac{2}{3}"),
    ("3.1416", "\\pi"), ("1.41421", "\\sqrt{2}"), ("\\frac{\\pi}{2}", "\\frac{2\\pi}{4}"),
    ("x \\in [2, 5)", "[2,5)"), ("[2,5)", "x \\in [2, 5)"), ("(2, 5)", "2 < x < 5"), ("[3, \\infty)", "x \\ge 3"),
    ("3 < x", "x > 3"), ("\\sqrt{2} \\cdot \\sqrt{8} - 4", "0"), ("2^{10}", "1024"), ("\\binom{5}{2}", "10"),
    ("5!", "120"), ("\\frac{6}{3}", "2"), ("2.0", "2"), ("\\frac{1}{2^{99}}", "2^{-99}"),
    ("\\frac{x}{2}", "0.5x"), ("\\sqrt{3}/2", "\\frac{\\sqrt{3}}{2}"), ("1500", "1.5 \\times 10^3"),
    ("-\\frac{1}{2}", "\\frac{-1}{2}"), ("\\frac{1}{4}", "25\\%"), ("\\frac{10}{4}", "2.5"),
    ("\\sqrt{\\frac{1}{4}}", "\\frac{1}{2}"), ("2 \\cdot 3", "6"), ("y = 3, x = 2", "x = 2, y = 3"),
    ("\\begin{pmatrix} 2/4 \\\\ 1 \\end{pmatrix}", "\\begin{pmatrix} \\frac{1}{2} \\\\ 1 \\end{pmatrix}"),
]

DIFFERENT = [
    ("41", "42"), ("-42", "42"), ("0.25", "0.5"), ("\\frac{3}{5}", "\\frac{3}{4}"), ("2\\sqrt{2}", "2\\sqrt{3}"),
    ("\\pi", "2\\pi"), ("e", "e^2"), ("30", "25\\%"), ("[2, 5]", "[2,5)"), ("(2, 5]", "[2,5)"),
    ("\\{1, 2\\}", "\\{1,2,3\\}"), ("(\\frac{\\pi}{2}, 3)", "\\left( 3, \\frac{\\pi}{2} \\right)"),
    ("\\begin{pmatrix} 1 & 2 \\\\ 4 & 3 \\end{pmatrix}", "\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}"),
    ("\\begin{pmatrix} 5 \\\\ 1 \\end{pmatrix}", "\\begin{pmatrix} 5 \\\\ -1 \\end{pmatrix}"),
    ("y = 2x - 3", "y=2x+3"), ("(x-1)^2", "x^2+2x+1"), ("x = 5", "x = 4"), ("\\text{Bob}", "\\text{Evelyn}"),
    ("D", "\\text{(C)}"), ("\\text{odd}", "\\text{even}"), ("-\\infty", "\\infty"), ("3-4i", "3+4i"),
    ("1", "0"), ("1501", "1.5 \\times 10^{3}"), ("10111_2", "10110_2"), ("x^2", "x^3"), ("y = 3", "x = 3"),
    ("(1, 2)", "(1, -2)"), ("\\sqrt{2}", "2"), ("\\frac{1}{2}", "2"),
]

NEAR_MISS = [
    ("\\frac{1}{2006!}", "\\frac{1}{2004!}"), ("\\frac{1}{2^{98}}", "\\frac{1}{2^{99}}"), ("2^{-98}", "2^{-99}"),
    ("1+\\frac{1}{e}", "1-\\frac{1}{e}"), ("0.1234568", "0.1234567"), ("0.33", "\\frac{1}{3}"),
    ("0.3", "\\frac{1}{3}"), ("0.6665", "\\frac{2}{3}"), ("3.14", "\\pi"), ("4.24", "3\\sqrt{2}"),
    ("1000000.4", "1000001"), ("2^{10^{10}} + 1", "2^{10^{10}}"), ("10^{-20}", "0"), ("0.000001", "0.000002"),
    ("1.0000001", "1"), ("\\frac{1000001}{1000000}", "1"), ("e^{\\pi} - \\pi", "20"),
    ("\\frac{22}{7}", "\\pi"), ("\\frac{355}{113}", "\\pi"), ("\\sqrt{2} + 10^{-30}", "\\sqrt{2}"),
    ("99.99\\%", "1"), ("0.99999", "1"), ("x^2 + 2x + 1.0001", "(x+1)^2"), ("2.7184", "e"),
    ("1.4143", "1.4142"),
]

CASES = ([(p, g, True, "equiv") for p, g in EQUIV] + [(p, g, True, "tricky") for p, g in TRICKY]
         + [(p, g, False, "different") for p, g in DIFFERENT] + [(p, g, False, "near_miss") for p, g in NEAR_MISS])
