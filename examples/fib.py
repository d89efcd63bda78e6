"""A tiny module to try Glint on: `glint complete examples/fib.py:9:5`."""


def fibonacci(n):
    """Return the n-th Fibonacci number."""
    if n < 2:
        return n
    a, b = 0, 1
    
    return b


def main():
    for i in range(10):
        print(i, fibonacci(i))
