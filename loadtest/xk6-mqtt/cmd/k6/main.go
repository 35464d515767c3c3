// Command k6 is k6 with the project's MQTT extension (k6/x/mqtt) built in.
package main

import (
	"go.k6.io/k6/cmd"

	_ "smart-parking/xk6-mqtt"
)

func main() {
	cmd.Execute()
}
