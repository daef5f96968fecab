module github.com/renewkit/renewkit

go 1.26.0
