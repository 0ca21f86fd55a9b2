"""S2S: discrete speech units (HuBERT features + k-means) and unit HiFi-GAN resynthesis, on legacy fairseq
checkpoints run in the modern environment through amela.s2s.compat. Importing this package loads nothing heavy."""
