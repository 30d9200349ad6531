module github.com/keyhold/keyhold

go 1.26
