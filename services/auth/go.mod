module switchboard/services/auth

go 1.26.0

require (
	github.com/golang-jwt/jwt/v5 v5.3.1
	go.uber.org/goleak v1.3.0
)

require github.com/stretchr/testify v1.12.1 // indirect

replace (
	switchboard/libs => ../../libs
	switchboard/proto => ../../proto
)
