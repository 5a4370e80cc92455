"""The embedded default: a tiny GPT, synthetic Markov-chain text and the next-token loss.

Everything here runs on a laptop CPU and needs no download, so that `make run` works anywhere.
"""
