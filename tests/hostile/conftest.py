"""The hostile suite: each test builds the bad input or fault a hostile trial found and checks it stays fixed."""
