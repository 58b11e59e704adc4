module github.com/flowproof/flowproof

go 1.26
